"""Greetings, thanks, yes/no and "are you a bot?": the bot's usual reply, unless the
message shows the customer needs a person (for example "thanks for nothing, useless")."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.escalation import decide, escalate
from actions.faq import STORE

RESPONSES = {
    "greet": "utter_greet",
    "goodbye": "utter_goodbye",
    "thanks": "utter_you_are_welcome",
    "affirm": "utter_affirm",
    "deny": "utter_deny",
    "bot_challenge": "utter_iamabot",
}


class ActionSmallTalk(Action):
    def name(self) -> str:
        return "action_small_talk"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict]:
        decision = decide(tracker, STORE.kb)
        if decision.handoff:
            return escalate(decision)
        intent = (tracker.latest_message or {}).get("intent", {}).get("name")
        dispatcher.utter_message(response=RESPONSES.get(intent, "utter_default"))
        return []
