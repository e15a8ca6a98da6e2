"""Turn a match into what the customer sees: an answer, "did you mean" buttons, or an
honest "I didn't understand" with the offer of a person.

Kept apart from the Rasa action so the wording rules can be tested without a server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from bot.kb.matcher import ANSWER, SUGGEST, Match
from bot.kb.model import DEFAULT_LANGUAGE, Entry, KnowledgeBase, Localized, pick
from bot.language import SUPPORTED
from bot.messages import say

HUMAN_PAYLOAD = "/request_human"


def human_button(language: str | None = None) -> dict[str, str]:
    return {"title": say("talk_to_person", language), "payload": HUMAN_PAYLOAD}


CHOICE_INTENT = "faq_choice"
CHOICE_ENTITY = "faq_id"
LANGUAGE_ENTITY = "faq_lang"


@dataclass(frozen=True)
class Reply:
    """One bot message: its text and quick-reply buttons."""

    text: str
    buttons: list[dict] = field(default_factory=list)


def choice_payload(entry_id: str, language: str | None = None) -> str:
    """The payload a button sends to pick an entry; Rasa parses it without the NLU model.

    It carries the language the button was shown in, so the answer comes in that language.
    """
    entities = {CHOICE_ENTITY: entry_id}
    if language:
        entities[LANGUAGE_ENTITY] = language
    return f"/{CHOICE_INTENT}{json.dumps(entities, ensure_ascii=False)}"


def answer_in_default_language(text: Localized, language: str | None) -> str:
    """The one-line note that goes above text editors have not translated into the
    customer's language yet (empty when they have)."""
    if language in SUPPORTED and language != DEFAULT_LANGUAGE and language not in text:
        return say("answer_in_default_language", language)
    return ""


def answer(entry: Entry, language: str | None = None) -> Reply:
    """The entry's answer in the customer's language; when editors have not written it in
    that language yet, the default language's, under a one-line note in the customer's."""
    text = pick(entry.answer, language)
    note = answer_in_default_language(entry.answer, language)
    if note:
        text = f"{note}\n\n{text}"
    if entry.links:
        text += "\n\n" + "\n".join(f"{pick(link.title, language)}: {link.url}" for link in entry.links)
    buttons = []
    for button in entry.buttons:
        payload = choice_payload(button.entry, language) if button.entry else button.text
        buttons.append({"title": pick(button.title, language), "payload": payload})
    return Reply(text=text, buttons=buttons)


def reply_for(match: Match, kb: KnowledgeBase, language: str | None = None) -> Reply:
    """The reply for a match in ``language``, the customer's (see actions.escalation)."""
    language = language or DEFAULT_LANGUAGE
    if match.decision == ANSWER and match.id and (entry := kb.get(match.id)):
        return answer(entry, language)
    if match.decision == SUGGEST:
        buttons = []
        for candidate in match.suggestions:
            entry = kb.get(candidate.id)
            if entry is not None:
                buttons.append({"title": pick(entry.question, language), "payload": choice_payload(entry.id, language)})
        if buttons:
            return Reply(say("did_you_mean", language), buttons=[*buttons, human_button(language)])
    return Reply(say("not_understood", language), buttons=[human_button(language)])


def match_summary(match: Match) -> dict:
    """What the bot tried, kept in a slot for the agent's handoff card."""
    return match.as_json()
