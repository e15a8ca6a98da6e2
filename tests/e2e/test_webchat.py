"""The widget's socket.io channel: history on reconnect, acknowledged and de-duplicated sends."""

from __future__ import annotations

import asyncio

import requests

from tests.e2e.clients import Customer
from tests.e2e.conftest import Stack


def test_history_is_restored_and_a_resent_message_is_handled_once(stack: Stack) -> None:
    async def scenario() -> str:
        async with Customer(stack.settings.rasa_url) as first:  # a first visit: the server names the session
            sender, token = first.session_id, first.token
            assert sender and sender.startswith("webchat:") and token
            assert first.confirmed["max_message"] == stack.settings.max_message_chars
            message = {"message": "How can I pay my bill?", "client_id": "c-1"}
            ack = await first.sio.call("user_uttered", message, timeout=60)
            assert ack == {"ok": True}
            await first.expect_text("direct debit")
            again = await first.sio.call("user_uttered", message, timeout=60)  # the network ate the ack
            assert again == {"ok": True, "duplicate": True}
        async with Customer(stack.settings.rasa_url, sender, token) as reloaded:
            assert reloaded.session_id == sender
            roles = [(t["role"], t["text"][:22]) for t in reloaded.history]
            assert roles[0] == ("customer", "How can I pay my bill?")
            assert roles[1][0] == "bot"
            ack = await reloaded.sio.call("user_uttered", {"message": ""}, timeout=10)
            assert ack["ok"] is False
        return sender

    sender = asyncio.run(asyncio.wait_for(scenario(), 120))
    said = [e["text"] for e in stack.tracker(sender)["events"] if e["event"] == "user"]
    assert said == ["How can I pay my bill?"]


def test_widget_assets_are_served_and_unknown_names_are_404(stack: Stack) -> None:
    base = f"{stack.settings.rasa_url}/webhooks/webchat"
    assert requests.get(f"{base}/nothing-here", timeout=10).status_code == 404
    assert requests.get(f"{base}/..%2Fsecrets.env", timeout=10).status_code == 404
