"""Turn a match into what the customer sees: an answer, "did you mean" buttons, or an
honest "I didn't understand" with the offer of a person.

Kept apart from the Rasa action so the wording rules can be tested without a server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from bot.kb.matcher import ANSWER, SUGGEST, Match
from bot.kb.model import Entry, KnowledgeBase, pick

HUMAN_PAYLOAD = "/request_human"
HUMAN_BUTTON = {"title": "Talk to a person", "payload": HUMAN_PAYLOAD}
CHOICE_INTENT = "faq_choice"
CHOICE_ENTITY = "faq_id"
LANGUAGE_ENTITY = "faq_lang"


@dataclass(frozen=True)
class Reply:
    """One bot message: literal ``text`` or a domain ``response`` name, plus buttons."""

    text: str | None = None
    response: str | None = None
    buttons: list[dict] = field(default_factory=list)


def choice_payload(entry_id: str, language: str | None = None) -> str:
    """The payload a button sends to pick an entry; Rasa parses it without the NLU model.

    It carries the language the button was shown in, so the answer comes in that language.
    """
    entities = {CHOICE_ENTITY: entry_id}
    if language:
        entities[LANGUAGE_ENTITY] = language
    return f"/{CHOICE_INTENT}{json.dumps(entities, ensure_ascii=False)}"


def answer(entry: Entry, language: str | None = None) -> Reply:
    text = pick(entry.answer, language)
    if entry.links:
        text += "\n\n" + "\n".join(f"{pick(link.title, language)}: {link.url}" for link in entry.links)
    buttons = []
    for button in entry.buttons:
        payload = choice_payload(button.entry, language) if button.entry else button.text
        buttons.append({"title": pick(button.title, language), "payload": payload})
    return Reply(text=text, buttons=buttons)


def reply_for(match: Match, kb: KnowledgeBase) -> Reply:
    if match.decision == ANSWER and match.id and (entry := kb.get(match.id)):
        return answer(entry, match.language)
    if match.decision == SUGGEST:
        buttons = []
        for candidate in match.suggestions:
            entry = kb.get(candidate.id)
            if entry is not None:
                buttons.append(
                    {
                        "title": pick(entry.question, candidate.language),
                        "payload": choice_payload(entry.id, candidate.language),
                    }
                )
        if buttons:
            return Reply(response="utter_did_you_mean", buttons=[*buttons, HUMAN_BUTTON])
    return Reply(response="utter_not_understood", buttons=[HUMAN_BUTTON])


def match_summary(match: Match) -> dict:
    """What the bot tried, kept in a slot for the agent's handoff card."""
    return match.as_json()
