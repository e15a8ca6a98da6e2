from handoff.app import main

main()
