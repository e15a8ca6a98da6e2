"""Troubleshooting guides in the conversation: a thin layer over ``bot.kb.guides`` that
keeps the guide's state in the ``guide`` slot.

Three ways in: an answer button (``action_guide``), the "back to the steps" button
(``action_guide``), and a typed message while a guide is open, which the FAQ and
small-talk actions first offer to :func:`typed_answer` ("still nothing", "да", "ne").
Every path first asks the usual question, should a person take over?, so an angry
customer in the middle of a guide is handed off at once, with the steps on the card.
"""

from __future__ import annotations

import time
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.escalation import (
    HANDOFF_ACTION,
    LANGUAGE_SLOT,
    REASON_SLOT,
    SCORES_SLOT,
    customer_language,
    decide,
    escalate,
    message_vector,
)
from bot.frustration import GUIDE, Turn
from bot.kb import guides
from bot.kb.model import Entry, KnowledgeBase
from bot.kb.reply import Reply, human_button
from bot.kb.typed_answers import OTHER_INTENTS
from bot.messages import say

EXHAUSTED = "guide_exhausted"
MATCH_SLOT = "kb_last_match"


def _store():
    from actions.faq import STORE

    return STORE


def utter(dispatcher: CollectingDispatcher, replies: tuple[Reply, ...] | list[Reply]) -> None:
    for reply in replies:
        dispatcher.utter_message(text=reply.text, buttons=reply.buttons)


def hand_off(state: dict[str, Any] | None, reason: str = EXHAUSTED) -> list[dict]:
    """Events that queue the chat for a person, keeping the guide's state for the card."""
    return [
        SlotSet(guides.SLOT, state),
        SlotSet(REASON_SLOT, reason),
        SlotSet(SCORES_SLOT, []),
        FollowupAction(HANDOFF_ACTION),
    ]


def apply(dispatcher: CollectingDispatcher, progress: guides.Progress, language: str) -> list[dict]:
    """Say what a guide turn produced and store its state (or hand off)."""
    utter(dispatcher, progress.replies)
    events: list[dict] = [SlotSet(LANGUAGE_SLOT, language)]
    if progress.handoff:
        return events + hand_off(progress.state)
    return [*events, SlotSet(guides.SLOT, progress.state)]


def start_guide(
    dispatcher: CollectingDispatcher, tracker: Tracker, kb: KnowledgeBase, entry: Entry, language: str
) -> list[dict]:
    """The customer asked a guide's question: start it, or continue it where they left off."""
    return apply(dispatcher, guides.start(kb, entry, language, tracker.get_slot(guides.SLOT)), language)


def is_open(state: object, now: float | None = None) -> bool:
    """A guide is under way: not over, not handed to a person, not left idle for
    ``guides.IDLE_SECONDS`` (the slot outlives sessions; last week's guide is not open)."""
    if not isinstance(state, dict) or not state.get("id") or state.get("ended"):
        return False
    at = state.get("at")
    return not isinstance(at, (int, float)) or (now or time.time()) - at <= guides.IDLE_SECONDS


def typed_answer(dispatcher: CollectingDispatcher, tracker: Tracker, language: str) -> list[dict] | None:
    """Handle a typed reply to the open guide's check; ``None`` when no guide is open or
    the message is not an answer (then the caller treats it as a new question)."""
    state = tracker.get_slot(guides.SLOT)
    if not is_open(state):
        return None
    message = tracker.latest_message or {}
    if (message.get("intent") or {}).get("name") in OTHER_INTENTS:
        return None  # "thanks", "hello", "are you a bot?": answered as small talk
    kb = _store().kb
    text = message.get("text") or ""
    reading = guides.read(kb, state, text, message_vector(tracker))
    if reading is None:
        return None
    record = SlotSet(MATCH_SLOT, {"query": text, "decision": GUIDE, "id": state.get("id"), "score": 100.0})
    decision = decide(tracker, kb, Turn("", GUIDE, None, False))
    if decision.handoff:  # anger, or a request for a person, in the middle of a guide
        return [record, SlotSet(LANGUAGE_SLOT, language), SlotSet(guides.SLOT, state), *escalate(decision)]
    if reading.not_helped:
        progress = guides.exhausted(kb, state, language)
    elif reading.unclear:
        progress = guides.unclear(kb, state, language)
    else:
        assert reading.option is not None
        progress = guides.choose(kb, state, reading.option, language, typed=text)
    return [record, *apply(dispatcher, progress, language)]


def ask_again(dispatcher: CollectingDispatcher, tracker: Tracker, language: str) -> list[dict] | None:
    """While a guide is open, a message the bot cannot place at all is most likely an answer
    it could not read ("hmm nope, kinda"): ask the step again with its buttons rather than
    "I didn't understand". ``None`` when no guide is open."""
    state = tracker.get_slot(guides.SLOT)
    if not is_open(state):
        return None
    progress = guides.unclear(_store().kb, state, language)
    utter(dispatcher, progress.replies)
    return [SlotSet(LANGUAGE_SLOT, language)]


def with_resume_button(tracker: Tracker, buttons: list[dict], language: str) -> list[dict]:
    """Any other reply while a guide is open offers the way back to it."""
    state = tracker.get_slot(guides.SLOT)
    if not is_open(state):
        return buttons
    button = guides.resume_button(_store().kb, state, language)
    return [*buttons, button] if button else buttons


class ActionGuide(Action):
    """Runs for a tapped answer (``guide_answer``) and for "back to the steps"."""

    def name(self) -> str:
        return "action_guide"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict]:
        kb = _store().kb
        language = customer_language(tracker)
        state = tracker.get_slot(guides.SLOT)
        message = tracker.latest_message or {}
        if message.get("intent", {}).get("name") == guides.RESUME_INTENT:
            return apply(dispatcher, guides.resume(kb, state, language), language)
        guide_id = next(tracker.get_latest_entity_values(guides.GUIDE_ENTITY), None)
        step_id = next(tracker.get_latest_entity_values(guides.STEP_ENTITY), None)
        option = _index(next(tracker.get_latest_entity_values(guides.OPTION_ENTITY), None))
        here = guides.current(kb, state)
        # A tap is explicit: it works on a guide left idle too, not on one that is over.
        if here is None or not isinstance(state, dict) or state.get("ended"):
            # A button from a guide that is over (or was never started here).
            dispatcher.utter_message(text=say("not_understood", language), buttons=[human_button(language)])
            return [SlotSet(LANGUAGE_SLOT, language)]
        if (guide_id, step_id) != (here[0].id, here[1].id) or option is None:
            # An older step's button: the customer is further on; ask the current step again.
            return apply(dispatcher, guides.resume(kb, state, language), language)
        return apply(dispatcher, guides.choose(kb, state, option, language), language)


def _index(value: object) -> int | None:
    """The option number a button carries (JSON gives an int; be lenient with "1")."""
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
