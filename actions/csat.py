"""The rating of a closed chat (a button or typed) and the comment after it (``bot/csat.py``)."""

from __future__ import annotations

import time
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.escalation import LANGUAGE_SLOT
from bot import csat
from bot.kb.reply import human_button
from bot.messages import say
from handoff import keys
from handoff.queue import CLOSED

# Reached by a follow-up from another action no rule continues from: listen, or Rasa's
# fallback would answer too.
LISTEN = FollowupAction("action_listen")
# Messages that are never a comment: a tap on an answer, a guide's step, asking for a person.
NOT_A_COMMENT = frozenset(("request_human", "faq_choice", "guide_answer", "guide_resume", "csat"))


def rating_turn(tracker: Tracker, can_answer: bool = False) -> list[dict] | None:
    """Hand the turn to ``action_store_csat`` when the message is a rating the bot asked for,
    or the comment it invited; ``None`` when it is neither. ``can_answer``: the knowledge
    base answers this message directly, so it is a new question, not a comment."""
    message = tracker.latest_message or {}
    waiting = csat.state(tracker.get_slot(csat.CSAT_SLOT), time.time())
    if waiting == "rating" and csat.rating_in(message.get("text") or "") is not None:
        return [FollowupAction("action_store_csat")]
    intent = (message.get("intent") or {}).get("name")
    if waiting == "comment" and intent not in NOT_A_COMMENT and not can_answer:
        return [FollowupAction("action_store_csat")]
    return None


class ActionStoreCsat(Action):
    """Keeps the customer's 1-5 rating of a closed chat, once, with the agent who handled
    it; then the comment they add, if any."""

    def name(self) -> str:
        return "action_store_csat"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict]:
        now = time.time()
        language = tracker.get_slot(LANGUAGE_SLOT)
        value = tracker.get_slot(csat.CSAT_SLOT)
        value = dict(value) if isinstance(value, dict) else {}
        text = (tracker.latest_message or {}).get("text") or ""
        waiting = csat.state(value, now)
        intent = ((tracker.latest_message or {}).get("intent") or {}).get("name")
        if waiting == "comment" and intent != "csat":
            value["comment"] = " ".join(text.split())[: csat.MAX_COMMENT]
            dispatcher.utter_message(text=say("csat_comment_thanks", language))
            return [SlotSet(csat.CSAT_SLOT, value), LISTEN]
        raw = next(tracker.get_latest_entity_values("csat_score"), None)
        typed = csat.rating_in(text) if raw is None else None
        try:
            score, comment = (int(raw), None) if raw is not None else typed or (0, None)
        except (TypeError, ValueError):
            score, comment = 0, None
        from actions.handoff import _text, redis  # it imports the actions that import this module

        chat = keys.chat(tracker.sender_id)
        state, agent = await redis().hmget(chat, "state", "agent")
        if _text(state) != CLOSED or not 1 <= score <= 5:
            dispatcher.utter_message(text=say("not_understood", language), buttons=[human_button(language)])
            return [LISTEN]
        if not await redis().hsetnx(chat, "csat", score):  # one rating per closed chat
            dispatcher.utter_message(text=say("csat_thanks", language))
            return [LISTEN]
        await redis().xadd(
            keys.CSAT,
            {"conversation_id": tracker.sender_id, "score": score, "agent": _text(agent), "ts": now},
        )
        value.update(asked=value.get("asked") or now, score=score, rated=now, comment=comment)
        dispatcher.utter_message(text=say("csat_comment_thanks" if comment else "csat_thanks", language))
        return [SlotSet(csat.CSAT_SLOT, value), LISTEN]
