"""Every tracker event reaches the Redis stream the handoff service reads."""

from __future__ import annotations

import json

from tests.e2e.conftest import Stack, new_sender, wait_for

STREAM = "brightline:events"


def test_customer_and_bot_turns_are_appended_to_the_event_stream(stack: Stack) -> None:
    sender = new_sender()
    stack.say(sender, "where is my order?")
    client = stack.redis_client()

    def events_for_sender() -> list[dict]:
        entries = client.xrange(STREAM, "-", "+")
        return [json.loads(fields["data"]) for _, fields in entries if fields["sender_id"] == f"rest:{sender}"]

    events = wait_for(lambda: [e for e in events_for_sender() if e["event"] == "bot"] and events_for_sender())
    kinds = [e["event"] for e in events]
    assert "user" in kinds and "bot" in kinds
    user = next(e for e in events if e["event"] == "user")
    assert user["text"] == "where is my order?"
    assert kinds.index("user") < kinds.index("bot")
