"""rasa_sdk actions: thin wrappers that call into ``bot/`` for the logic."""
