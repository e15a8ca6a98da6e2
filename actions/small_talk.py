"""Greetings, thanks, yes/no and "are you a bot?": the bot's usual reply, unless the
message shows the customer needs a person (for example "thanks for nothing, useless")."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.csat import rating_turn
from actions.escalation import LANGUAGE_SLOT, customer_language, decide, escalate, message_vector
from actions.faq import STORE
from actions.guide import ask_again, typed_answer, with_resume_button
from bot.kb.matcher import ANSWER
from bot.kb.reply import human_button
from bot.messages import say

REPLIES = {
    "greet": "greet",
    "goodbye": "goodbye",
    "thanks": "you_are_welcome",
    "affirm": "affirm",
    "deny": "deny",
    "bot_challenge": "iamabot",
    "nonsense": "not_understood",
    "out_of_scope": "out_of_scope",
}


# What the NLU model takes for off-topic ("do you lend projectors?") is answered from the
# knowledge base when an editor has written an entry for it since the model was trained:
# the matcher must be this sure (near an editor's own wording), since the model said no.
KNOWN_SCORE = 90.0


def knowledge_base_knows(tracker: Tracker) -> bool:
    text = (tracker.latest_message or {}).get("text") or ""
    match = STORE.matcher().match(text, vector=message_vector(tracker))
    return match.decision == ANSWER and match.score >= KNOWN_SCORE


def returning_name(tracker: Tracker) -> str | None:
    """The first name of a customer who has talked to us before (an earlier session), when a
    channel told us their name (the widget's logged-in user, WhatsApp's or Messenger's
    profile); ``None`` for a first visit or an unknown name."""
    metadata = (tracker.latest_message or {}).get("metadata") or {}
    name = tracker.get_slot("customer_name") or metadata.get("customer_name")
    if not isinstance(name, str) or not name.split():
        return None
    sessions = sum(1 for event in tracker.events if event.get("event") == "session_started")
    return name.split()[0][:40] if sessions > 1 else None


class ActionSmallTalk(Action):
    def name(self) -> str:
        return "action_small_talk"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict]:
        if (rated := rating_turn(tracker)) is not None:
            return rated  # "5" or "thanks, great help" after the rating question
        language = customer_language(tracker)
        answered = typed_answer(dispatcher, tracker, language)  # "yes", "нет" to a guide's check
        if answered is not None:
            return answered
        intent = (tracker.latest_message or {}).get("intent", {}).get("name")
        if intent == "out_of_scope" and knowledge_base_knows(tracker):
            return [FollowupAction("action_answer_faq")]
        decision = decide(tracker, STORE.kb)
        if decision.handoff:
            return escalate(decision)
        if intent == "nonsense" and (again := ask_again(dispatcher, tracker, language)):
            return again
        buttons = [human_button(language)] if intent in ("deny", "nonsense", "out_of_scope") else []
        buttons = with_resume_button(tracker, buttons, language)
        name = returning_name(tracker) if intent == "greet" else None
        text = say("greet_back", language, name=name) if name else say(REPLIES.get(intent, "not_understood"), language)
        dispatcher.utter_message(text=text, buttons=buttons)
        return [SlotSet(LANGUAGE_SLOT, language)]
