"""Turn a Rasa tracker into the transcript the agent reads: customer, bot, agent, system."""

from __future__ import annotations

from typing import Any


def turn_from_event(event: dict[str, Any]) -> dict[str, Any] | None:
    kind = event.get("event")
    timestamp = event.get("timestamp")
    if kind == "user":
        text = event.get("text") or ""
        metadata = event.get("metadata") or {}
        if text.startswith("/"):  # a button press: show the button the customer saw
            title = metadata.get("button_title")
            intent = (event.get("parse_data") or {}).get("intent", {}).get("name", text)
            text = f"[pressed: {title}]" if isinstance(title, str) and title else f"[pressed a button: {intent}]"
        turn = {"role": "customer", "text": text, "timestamp": timestamp, "agent": None, "buttons": None}
        if isinstance(metadata.get("client_id"), str):
            turn["client_id"] = metadata["client_id"]
        if isinstance(metadata.get("button_title"), str) and event.get("text", "").startswith("/"):
            turn["button_title"] = metadata["button_title"]
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
    turns = [turn_from_event(event) for event in tracker.get("events") or []]
    return [turn for turn in turns if turn is not None]
