"""The handoff service: queue, agents, console and the Rasa API client (aiohttp)."""
