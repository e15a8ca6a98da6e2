"""Turn a Rasa tracker into the transcript the agent reads: customer, bot, agent, system."""

from __future__ import annotations

from typing import Any


def button_title(payload: str, offered: list[dict[str, Any]] | None) -> str | None:
    """The title of the button whose payload the customer sent, among those last offered."""
    for button in offered or []:
        if isinstance(button, dict) and button.get("payload") == payload and isinstance(button.get("title"), str):
            return button["title"]
    return None


def turn_from_event(event: dict[str, Any], offered: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """One transcript turn; ``offered``: the buttons of the bot's last message, to name a tap."""
    kind = event.get("event")
    timestamp = event.get("timestamp")
    if kind == "user":
        text = event.get("text") or ""
        metadata = event.get("metadata") or {}
        if text.startswith("/"):  # a button press: show the button the customer saw
            title = metadata.get("button_title")
            title = title if isinstance(title, str) and title else button_title(text, offered)
            text = f"[pressed: {title}]" if title else "[pressed a button]"
        turn = {"role": "customer", "text": text, "timestamp": timestamp, "agent": None, "buttons": None}
        if isinstance(metadata.get("client_id"), str):
            turn["client_id"] = metadata["client_id"]
        if isinstance(metadata.get("button_title"), str) and event.get("text", "").startswith("/"):
            turn["button_title"] = metadata["button_title"]
        attachment = metadata.get("attachment")
        if isinstance(attachment, dict) and isinstance(attachment.get("id"), str):
            # An image or document the customer sent during a handoff (bot/channels/media.py).
            turn["attachment"] = {k: attachment.get(k) for k in ("id", "kind", "mime", "name", "size")}
        return turn
    if kind == "bot":
        metadata = event.get("metadata") or {}
        agent = metadata.get("agent")
        buttons = (event.get("data") or {}).get("buttons")
        return {
            "role": "agent" if agent else "bot",
            "text": event.get("text") or "",
            "timestamp": timestamp,
            "agent": agent,
            "buttons": buttons or None,
        }
    if kind == "pause":
        return {"role": "system", "text": "Bot paused: handed to a person", "timestamp": timestamp}
    if kind == "resume":
        return {"role": "system", "text": "Bot resumed", "timestamp": timestamp}
    return None


def transcript(tracker: dict[str, Any]) -> list[dict[str, Any]]:
    turns, offered = [], None
    for event in tracker.get("events") or []:
        turn = turn_from_event(event, offered)
        if event.get("event") == "bot":
            offered = (event.get("data") or {}).get("buttons") or offered
        if turn is not None:
            turns.append(turn)
    return turns
