"""Rasa channel connectors: the website widget (socket.io), WhatsApp and Messenger."""
