"""Walking a customer through a troubleshooting guide, one step at a time.

Plain functions over the knowledge base and a small state dict, so every path (tapped and
typed answers, leaving and coming back, another guide, a handoff) is tested without Rasa;
``actions/guide.py`` only moves the state in and out of the ``guide`` slot.

The state is JSON: ``{"id": guide id, "step": step id, "trail": [...]}``. The trail holds
every step asked and the answer given (the option and, when typed, the customer's words):
it is what the agent's card shows after a handoff, so nobody asks the customer again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rapidfuzz import fuzz

from bot.kb.model import DEFAULT_LANGUAGE, DONE, GUIDE_PREFIX, HANDOFF, Entry, KnowledgeBase, Step, pick
from bot.kb.normalize import normalize
from bot.kb.reply import Reply, answer_in_default_language
from bot.kb.typed_answers import NOT_HELPED, meaning
from bot.messages import say

SLOT = "guide"
ANSWER_INTENT = "guide_answer"
RESUME_INTENT = "guide_resume"
GUIDE_ENTITY, STEP_ENTITY, OPTION_ENTITY = "guide_id", "guide_step", "guide_option"
RESUME_PAYLOAD = f"/{RESUME_INTENT}"
# A guide may send the customer round a loop ("try again"); past this many answers a person
# takes over, and the slot stays small.
MAX_TRAIL = 30
TITLE_MATCH = 90  # rapidfuzz ratio for a typed reply that repeats a button's title
# A guide left alone this long is over: the customer's later questions no longer carry a
# "back to the steps" button, and their replies are not read as answers to it.
IDLE_SECONDS = 30 * 60


@dataclass(frozen=True)
class Progress:
    """What one turn of a guide produced: the bot's messages, the slot's new value (``None``
    once the guide is over) and whether a person takes over now."""

    replies: tuple[Reply, ...]
    state: dict[str, Any] | None
    handoff: bool = False
    done: bool = False


@dataclass(frozen=True)
class Reading:
    """How a typed reply reads at the current step: an option, "none of this helps", or
    an answer that fits no option (``unclear``); ``None`` overall means not an answer."""

    option: int | None = None
    not_helped: bool = False
    unclear: bool = False
    meaning: str | None = field(default=None, compare=False)


def current(kb: KnowledgeBase, state: dict[str, Any] | None) -> tuple[Entry, Step] | None:
    """The guide and step a state points at, if both still exist (an editor may have
    removed the step since: then the guide is over)."""
    if not isinstance(state, dict):
        return None
    entry = kb.get(str(state.get("id") or ""))
    if entry is None or entry.guide is None:
        return None
    step = entry.guide.step(state.get("step"))
    return (entry, step) if step is not None else None


def answer_payload(guide_id: str, step_id: str, option: int) -> str:
    """What an answer button sends; Rasa parses it without the NLU model."""
    entities = {GUIDE_ENTITY: guide_id, STEP_ENTITY: step_id, OPTION_ENTITY: option}
    return f"/{ANSWER_INTENT}{json.dumps(entities, ensure_ascii=False)}"


def prompt(entry: Entry, step: Step, language: str) -> Reply:
    """A step as the customer sees it: the instruction, the check, the answers as buttons."""
    text = pick(step.ask, language)
    if step.say:
        text = f"{pick(step.say, language)}\n\n{text}"
    buttons = [
        {"title": pick(option.title, language), "payload": answer_payload(entry.id, step.id, index)}
        for index, option in enumerate(step.options)
    ]
    return Reply(text=text, buttons=buttons)


def start(
    kb: KnowledgeBase, entry: Entry, language: str, state: dict[str, Any] | None = None, trail: list | None = None
) -> Progress:
    """Start ``entry``'s guide, or continue it where the customer left off when ``state``
    is the same guide (asking its question again is how people come back)."""
    assert entry.guide is not None
    here = current(kb, state)
    if here is not None and here[0].id == entry.id:
        return resume(kb, state, language)
    intro = pick(entry.guide.intro, language)
    note = answer_in_default_language(entry.guide.intro, language)
    if note:
        intro = f"{note}\n\n{intro}"
    first = entry.guide.first
    new_state = {"id": entry.id, "step": first.id, "trail": list(trail or []), "at": time.time()}
    return Progress((Reply(intro), prompt(entry, first, language)), new_state)


def resume(kb: KnowledgeBase, state: dict[str, Any] | None, language: str) -> Progress:
    """Ask the current step again, after the customer asked something else."""
    here = current(kb, state)
    if here is None:
        return Progress((Reply(say("not_understood", language)),), None)
    entry, step = here
    return Progress((Reply(say("guide_back", language)), prompt(entry, step, language)), state)


def resume_button(kb: KnowledgeBase, state: dict[str, Any] | None, language: str) -> dict[str, str] | None:
    """The "back to the steps" button under any other reply while a guide is open."""
    if current(kb, state) is None:
        return None
    return {"title": say("guide_resume_button", language), "payload": RESUME_PAYLOAD}


def choose(kb: KnowledgeBase, state: dict[str, Any], option: int, language: str, typed: str | None = None) -> Progress:
    """Apply the customer's answer at the current step and say what comes next."""
    here = current(kb, state)
    if here is None or not 0 <= option < len(here[1].options):
        return Progress((Reply(say("not_understood", language)),), None)
    entry, step = here
    chosen = step.options[option]
    trail = [*state.get("trail", []), {"guide": entry.id, "step": step.id, "option": option, "typed": typed}]
    replies: list[Reply] = [Reply(pick(chosen.reply, language))] if chosen.reply else []
    then = chosen.then
    if len(trail) > MAX_TRAIL:
        then = HANDOFF
    if then == DONE:
        if not chosen.reply:
            replies.append(Reply(pick(entry.guide.resolved, language)))
        return Progress(tuple(replies), None, done=True)
    if then == HANDOFF:
        return exhausted(kb, {**state, "trail": trail}, language, replies)
    if then.startswith(GUIDE_PREFIX):
        target = kb.get(then.removeprefix(GUIDE_PREFIX))
        if target is None or target.guide is None:
            return exhausted(kb, {**state, "trail": trail}, language, replies)
        started = start(kb, target, language, trail=trail)
        return Progress((*replies, *started.replies), started.state)
    following = entry.guide.step(then)
    if following is None:
        return exhausted(kb, {**state, "trail": trail}, language, replies)
    moved = {**state, "step": following.id, "trail": trail, "at": time.time()}
    return Progress((*replies, prompt(entry, following, language)), moved)


def exhausted(
    kb: KnowledgeBase, state: dict[str, Any], language: str, replies: list[Reply] | tuple[Reply, ...] = ()
) -> Progress:
    """The steps did not fix it: a person takes over, and the state (with its trail) stays
    in the slot for the handoff card."""
    spoken = list(replies) or [Reply(say("guide_exhausted", language))]
    return Progress(tuple(spoken), {**state, "ended": "handoff"}, handoff=True)


def read(
    kb: KnowledgeBase, state: dict[str, Any] | None, text: str, vector: np.ndarray | None = None
) -> Reading | None:
    """How the customer's typed message reads as an answer to the current step, or
    ``None`` when it is not one (a new question: the bot answers that instead)."""
    here = current(kb, state)
    if here is None or not text.strip() or text.startswith("/"):
        return None
    _, step = here
    typed = normalize(text)
    for index, option in enumerate(step.options):
        wordings = [*option.title.values(), *(w for ws in option.says.values() for w in ws)]
        for wording in wordings:
            known = normalize(wording)
            if typed == known or (len(known) >= 4 and fuzz.ratio(typed, known) >= TITLE_MATCH):
                return Reading(option=index)
    found = meaning(text, vector, kb)
    if found is None:
        return None
    if found == NOT_HELPED:
        return Reading(not_helped=True, meaning=found)
    for index, option in enumerate(step.options):
        if option.means == found:
            return Reading(option=index, meaning=found)
    return Reading(unclear=True, meaning=found)  # e.g. "not sure" where no answer means unsure


def unclear(kb: KnowledgeBase, state: dict[str, Any], language: str) -> Progress:
    """An answer that fits none of the step's options: ask again, with the buttons."""
    here = current(kb, state)
    if here is None:
        return Progress((Reply(say("not_understood", language)),), None)
    entry, step = here
    again = prompt(entry, step, language)
    return Progress((Reply(say("guide_pick", language), again.buttons),), state)


def card(kb: KnowledgeBase, state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The guide on the agent's card: its title and every step asked with the answer given,
    in the default language (the agents'), with the customer's own words when typed."""
    if not isinstance(state, dict) or not state.get("id"):
        return None
    steps = []
    for item in state.get("trail", [])[-MAX_TRAIL:]:
        entry = kb.get(str(item.get("guide")))
        step = entry.guide.step(item.get("step")) if entry and entry.guide else None
        if step is None:
            continue
        index = item.get("option")
        option = step.options[index] if isinstance(index, int) and 0 <= index < len(step.options) else None
        steps.append(
            {
                "guide": entry.id,
                "asked": pick(step.ask, DEFAULT_LANGUAGE),
                "did": pick(step.say, DEFAULT_LANGUAGE) if step.say else "",
                "answer": pick(option.title, DEFAULT_LANGUAGE) if option else "",
                "typed": item.get("typed") or None,
            }
        )
    entry = kb.get(str(state.get("id")))
    title = pick(entry.question, DEFAULT_LANGUAGE) if entry else str(state.get("id"))
    return {"id": state.get("id"), "title": title, "steps": steps, "ended": state.get("ended") or "open"}
