"""Rasa-side extensions and the plain libraries the actions call into."""
