"""``python -m bot.rasa_main run ...``: Rasa's own command line, with our fixes to Rasa 3.6
applied first (``bot.rasa_patches``). ``make run`` and the tests start Rasa this way."""

from __future__ import annotations

from bot.rasa_patches import apply


def main() -> None:
    apply()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
