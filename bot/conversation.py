"""Read a conversation's tracker events (plain dicts) into what the handoff needs: the
customer's turns since the bot last took over, a short summary, the KB entries tried,
and the agent's handoff card.

Everything here works on the event dicts Rasa stores, so it is tested without a server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.frustration import Decision, Turn
from bot.kb.model import KnowledgeBase
from bot.language import guess_language
from bot.nlu.encoder import VECTOR_KEY, unpack_vector

DIM = 384  # multilingual-e5-small; unpack_vector refuses anything else
SMALL_TALK = ("greet", "goodbye", "thanks", "affirm", "deny", "bot_challenge", "nonsense")

MATCH_SLOT = "kb_last_match"
SUMMARY_TURNS = 8
SUMMARY_CHARS = 160


def since_bot_took_over(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events after the last hand-back or session start: earlier anger was already handled."""
    start = 0
    for index, event in enumerate(events):
        if event.get("event") in ("resume", "session_started"):
            start = index + 1
    return list(events[start:])


def customer_turns(events: Sequence[dict[str, Any]], kb: KnowledgeBase | None = None) -> list[Turn]:
    """One :class:`Turn` per customer message, with what the bot did about it."""
    turns: list[Turn] = []
    pending: dict[str, Any] | None = None

    def flush(match: dict[str, Any] | None) -> None:
        if pending is None:
            return
        entry_id = (match or {}).get("id")
        entry = kb.get(entry_id) if (kb and entry_id) else None
        turns.append(
            Turn(
                text=pending.get("text") or "",
                outcome=(match or {}).get("decision"),
                entry_id=entry_id,
                sensitive=bool(entry and entry.handoff and (match or {}).get("decision") == "answer"),
                vector=_vector(pending),
                tone=((pending.get("parse_data") or {}).get("intent") or {}).get("name") not in SMALL_TALK
                and not str(pending.get("text") or "").startswith("/"),  # a button's payload
            )
        )

    match: dict[str, Any] | None = None
    for event in events:
        kind = event.get("event")
        if kind == "user":
            flush(match)
            pending, match = event, None
        elif kind == "slot" and event.get("name") == MATCH_SLOT and pending is not None:
            match = event.get("value")
    flush(match)
    return turns


def _vector(event: dict[str, Any]):
    """The embedding the NLU pipeline left in the event's parse data, if any."""
    packed = (event.get("parse_data") or {}).get(VECTOR_KEY)
    return unpack_vector(packed, DIM) if packed else None


def kb_matches(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for event in events:
        value = event.get("value")
        if (
            event.get("event") == "slot"
            and event.get("name") == MATCH_SLOT
            and isinstance(value, dict)
            and value.get("decision") != "guide"  # the card shows the guide on its own
        ):
            match = {k: value.get(k) for k in ("query", "decision", "id", "score")}
            if isinstance(match["query"], str) and match["query"].startswith("/"):
                match["query"] = '[tapped a "Did you mean" choice]'  # not the raw payload
            out.append(match)
    return out


def summary(events: Sequence[dict[str, Any]], limit: int = SUMMARY_TURNS) -> list[str]:
    """The last few exchanges, one line each, so an agent gets the gist at a glance."""
    lines = []
    for event in events:
        text = " ".join(str(event.get("text") or "").split())
        if not text or text.startswith("/"):
            continue
        if event.get("event") == "user":
            lines.append(f"Customer: {_clip(text)}")
        elif event.get("event") == "bot":
            lines.append(f"Bot: {_clip(text)}")
    return lines[-limit:]


def _clip(text: str) -> str:
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def conversation_language(events: Sequence[dict[str, Any]]) -> str:
    said = " ".join(str(e.get("text") or "") for e in events if e.get("event") == "user")
    return guess_language(said)


def card_fields(events: Sequence[dict[str, Any]], decision: Decision | None) -> dict[str, Any]:
    """Everything the card needs that comes from the conversation itself."""
    recent = since_bot_took_over(events)
    return {
        "reason": (decision.reason if decision and decision.reason else "asked_for_human"),
        "scores": list(decision.scores) if decision else [],
        "language": conversation_language(recent or events),
        "summary": summary(recent or events),
        "kb_matches": kb_matches(recent or events)[-5:],
    }
