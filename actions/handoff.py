"""Hand a conversation to a person: queue it with its card, tell the customer honestly
what happens next, and pause the bot so it never talks over the agent."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, ConversationPaused, FollowupAction, Restarted, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from redis.asyncio import Redis

from actions.escalation import REASON_SLOT, SCORES_SLOT, customer_language, decide
from actions.faq import STORE
from bot.business_hours import load_business_hours
from bot.conversation import card_fields
from bot.kb import guides
from bot.kb.model import Entry, KnowledgeBase
from bot.messages import say, when
from bot.settings import load_settings
from bot.teams import load_teams, topic_of
from handoff import keys
from handoff.agents import Agents
from handoff.queue import ASSIGNED, WAITING, Card, Queue, WaitingLine, estimate_wait_minutes

_settings = load_settings()
HOURS = load_business_hours(_settings.business_hours_file)
TEAMS = load_teams(_settings.teams_file)
HANDOFF_SLOT = "handoff"
_redis: Redis | None = None
_line: WaitingLine | None = None


def redis() -> Redis:
    """One pool per action-server process, created on first use inside its event loop."""
    global _redis
    if _redis is None:
        address = _settings.redis
        _redis = address.client()
    return _redis


def line() -> WaitingLine:
    """Places in line, with the reads shared by handoffs that happen at the same time."""
    global _line
    if _line is None:
        _line = WaitingLine(Queue(redis()))
    return _line


def named(events: list[dict[str, Any]]) -> str | None:
    """The name a channel gave with any of the customer's messages, the latest first."""
    for event in reversed(events):
        name = (event.get("metadata") or {}).get("customer_name") if event.get("event") == "user" else None
        if isinstance(name, str) and name.strip():
            return name
    return None


def about(kb: KnowledgeBase, guide_state: Any, matches: list[dict[str, Any]]) -> Entry | None:
    """The entry the conversation was about: the guide under way, else the latest entry the
    bot answered or offered."""
    if isinstance(guide_state, dict) and kb.get(str(guide_state.get("id") or "")):
        return kb.get(guide_state["id"])
    for match in reversed(matches):
        if match.get("decision") in ("answer", "suggest") and match.get("id") and kb.get(match["id"]):
            return kb.get(match["id"])
    return None


def waiting_message(position: int | None, wait: int | None, back: str | None = None, language: str = "en") -> str:
    """What the customer is told right after the handoff: only what we can keep."""
    if back is not None:
        return say("handoff_after_hours", language, hours=HOURS.describe(), zone=HOURS.timezone.key, back=back)
    if wait is None:
        return say("handoff_nobody", language)
    return say("handoff_queue", language, position=position or 1, minutes=wait)


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict]:
        decision = decide(tracker, STORE.kb)
        fields = card_fields(tracker.events, decision)
        fields["reason"] = tracker.get_slot(REASON_SLOT) or fields["reason"]
        fields["scores"] = tracker.get_slot(SCORES_SLOT) or fields["scores"]
        fields["language"] = customer_language(tracker)
        fields["guide"] = guides.card(STORE.kb, tracker.get_slot(guides.SLOT))
        entry = about(STORE.kb, tracker.get_slot(guides.SLOT), fields["kb_matches"])
        fields["topic"] = topic_of(entry.source) if entry else None
        fields["team"] = TEAMS.team_for(fields["topic"], fields["reason"])
        metadata = (tracker.latest_message or {}).get("metadata") or {}
        card = Card(
            conversation_id=tracker.sender_id,
            channel=tracker.get_latest_input_channel() or "unknown",
            customer_name=tracker.get_slot("customer_name") or metadata.get("customer_name") or named(tracker.events),
            vip=bool(tracker.get_slot("vip")),  # set by trusted code only, never by the customer
            created_at=time.time(),
            **fields,
        )
        queue = Queue(redis())
        await queue.enqueue(card)
        position = await line().position(card.conversation_id)
        agents_online, free_slots = await Agents(redis()).availability()
        if position is not None:
            await queue.remember_position_told(card.conversation_id, position)
        wait = estimate_wait_minutes(position or 1, agents_online, free_slots, _settings.avg_handle_minutes)
        now = datetime.now(timezone.utc)
        back = None
        if not HOURS.is_open(now):
            reopening = HOURS.next_open(now)
            back = when(reopening, now, card.language) if reopening else "…"
        text = waiting_message(position, wait, back, card.language or "en")
        if back is not None or wait is None:  # nobody will answer soon: offer to be contacted instead
            text += " " + say("followup_invite", card.language)
            await redis().hset(keys.chat(card.conversation_id), "followup", "offered")
        dispatcher.utter_message(text=text)
        # Paused, Rasa stops predicting before it would log action_listen; log it here so
        # the customer's next message is a new turn when the bot takes over again.
        return [
            SlotSet(
                HANDOFF_SLOT, {"reason": card.reason, "team": card.team, "topic": card.topic, "language": card.language}
            ),
            SlotSet(REASON_SLOT, None),
            SlotSet(SCORES_SLOT, None),
            SlotSet(guides.SLOT, None),  # the person takes it from here; the card keeps the steps
            ConversationPaused(),
            ActionExecuted("action_listen"),
        ]


async def still_with_a_person(conversation_id: str) -> bool:
    state = await redis().hget(keys.chat(conversation_id), "state")
    return _text(state) in (WAITING, ASSIGNED)


class ActionSessionStart(Action):
    """A new session (after an hour of silence) must not wake the bot while the customer
    is waiting for, or talking to, a person: Rasa's default clears the pause."""

    def name(self) -> str:
        return "action_session_start"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict]:
        events: list[dict] = [SessionStarted()]
        events += [SlotSet(name, value) for name, value in tracker.current_slot_values().items() if value is not None]
        if await still_with_a_person(tracker.sender_id):
            events.append(ConversationPaused())
        events.append(ActionExecuted("action_listen"))
        return events


class ActionRestart(Action):
    """``/restart`` resets the conversation, but never takes it away from an agent."""

    def name(self) -> str:
        return "action_restart"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict]:
        if await still_with_a_person(tracker.sender_id):
            # Rasa keeps predicting after a restart even while paused; listening ends that.
            return [ConversationPaused(), FollowupAction("action_listen")]
        return [Restarted()]


def _text(value: object) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
