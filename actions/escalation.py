"""The check every customer message passes before the bot answers: should a person take
over? Shared by the FAQ and small-talk actions so no path skips it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction, SlotSet

from bot.conversation import customer_turns, since_bot_took_over
from bot.frustration import Decision, Turn, assess
from bot.kb.model import KnowledgeBase
from bot.language import guess_language
from bot.settings import load_settings

FRUSTRATION = load_settings().frustration

HANDOFF_ACTION = "action_handoff"
LANGUAGE_SLOT = "language"
REASON_SLOT = "handoff_reason"
SCORES_SLOT = "handoff_scores"


def customer_language(tracker: Tracker) -> str:
    """The language of the customer's latest message, else the one they were using.

    A button press, "?!", or a message too short to tell ("ok", "wifi") keeps the language
    remembered in the slot, so a Latvian customer who types "wifi" still hears Latvian.
    """
    text = (tracker.latest_message or {}).get("text") or ""
    known = tracker.get_slot(LANGUAGE_SLOT) or "en"
    if text.startswith("/") or not any(ch.isalpha() for ch in text):
        return known
    return guess_language(text, default=known)


def message_vector(tracker: Tracker) -> np.ndarray | None:
    """The latest message's embedding made by the NLU pipeline, if it sent one (see
    bot/nlu/rasa_featurizer.py): the matcher and the frustration scorer reuse it."""
    from bot.nlu.encoder import VECTOR_KEY, get_encoder, unpack_vector

    return unpack_vector((tracker.latest_message or {}).get(VECTOR_KEY), get_encoder().dim)


def decide(tracker: Tracker, kb: KnowledgeBase, current: Turn | None = None) -> Decision:
    """Assess the conversation since the bot last took over, ending with ``current``."""
    turns = customer_turns(since_bot_took_over(tracker.events), kb)
    if current is not None and turns:
        turns[-1] = replace(current, text=turns[-1].text, vector=turns[-1].vector, tone=turns[-1].tone)
    return assess(turns, FRUSTRATION)


def escalate(decision: Decision) -> list[dict]:
    """Events that make the handoff action run next, with the reason and scores for its card."""
    return [
        SlotSet(REASON_SLOT, decision.reason),
        SlotSet(SCORES_SLOT, list(decision.scores)),
        FollowupAction(HANDOFF_ACTION),
    ]
