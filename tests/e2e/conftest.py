"""The end-to-end tests' helpers; the fixtures that start the stack are in tests/stack.py."""

from tests.stack import CHANNEL_SECRETS, REST_TOKEN, WEBCHAT_SECRET, Stack, new_sender, new_webchat_id, wait_for

__all__ = ["CHANNEL_SECRETS", "REST_TOKEN", "WEBCHAT_SECRET", "Stack", "new_sender", "new_webchat_id", "wait_for"]
