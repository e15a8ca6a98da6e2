"""Answers support questions from the knowledge base (``data/faq``)."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.csat import rating_turn
from actions.escalation import LANGUAGE_SLOT, customer_language, decide, escalate, message_vector
from actions.guide import ask_again, start_guide, typed_answer, with_resume_button
from bot.frustration import Turn
from bot.kb.matcher import ANSWER, NONE, Match
from bot.kb.reply import CHOICE_ENTITY, CHOICE_INTENT, LANGUAGE_ENTITY, answer, match_summary, reply_for
from bot.kb.store import KnowledgeBaseStore
from bot.settings import load_settings

_settings = load_settings()
STORE = KnowledgeBaseStore(_settings.kb_dir, _settings.match, save_vectors=True)


class ActionAnswerFaq(Action):
    """Runs for the ``faq`` intent, a "did you mean" choice, and ``nlu_fallback``."""

    def name(self) -> str:
        return "action_answer_faq"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[dict]:
        matcher = STORE.matcher()
        message = tracker.latest_message or {}
        chosen = next(tracker.get_latest_entity_values(CHOICE_ENTITY), None)
        entry = matcher.kb.get(chosen) if chosen else None
        language = customer_language(tracker)
        picked = message.get("intent", {}).get("name") == CHOICE_INTENT and entry is not None
        if not picked and (answered := typed_answer(dispatcher, tracker, language)) is not None:
            return answered
        if picked:
            match = Match(query=message.get("text") or "", decision=ANSWER, id=entry.id, score=100.0)
            language = next(tracker.get_latest_entity_values(LANGUAGE_ENTITY), None) or language
            reply = answer(entry, language)
        else:
            match = matcher.match(message.get("text") or "", vector=message_vector(tracker))
            reply = reply_for(match, matcher.kb, language)
        if not picked and (rated := rating_turn(tracker, can_answer=match.decision == ANSWER)) is not None:
            return rated  # "4" after the rating question, or the comment after the rating
        matched = matcher.kb.get(match.id) if match.id else None
        sensitive = bool(matched and matched.handoff and match.decision == ANSWER)
        decision = decide(tracker, matcher.kb, Turn("", match.decision, match.id, sensitive))
        events = [SlotSet("kb_last_match", match_summary(match)), SlotSet(LANGUAGE_SLOT, language)]
        if decision.handoff and decision.reason != "sensitive_topic":
            return events + escalate(decision)
        if matched is not None and matched.guide is not None and match.decision == ANSWER and not decision.handoff:
            return events + start_guide(dispatcher, tracker, matcher.kb, matched, language)
        if match.decision == NONE and not decision.handoff and (again := ask_again(dispatcher, tracker, language)):
            return events + again
        dispatcher.utter_message(text=reply.text, buttons=with_resume_button(tracker, reply.buttons, language))
        return events + (escalate(decision) if decision.handoff else [])
