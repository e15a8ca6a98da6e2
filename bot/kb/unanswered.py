"""What customers asked that the bot could not answer, grouped by meaning, for editors.

Read from the event stream every process already writes (``bot.broker``): no extra
logging, and it covers every channel. A customer's question counts as unanswered when

* the bot said it did not understand (``not_understood``);
* it offered "did you mean" and the customer picked none of the choices
  (``suggestion_not_picked``);
* it answered, and the customer's next message said it did not help, or the chat went to
  a person at the next turn (``answer_then_handoff``, ``not_helped``);
* a troubleshooting guide it started ended with a person (``guide_handoff``).

Questions are grouped by meaning with the sentence encoder (the vector the NLU pipeline
left in the event, so nothing is embedded twice): "my router is beeping" and "the hub
keeps making a noise" land in one group, whatever the language. Each group has its count,
example wordings, languages, and the entry the matcher thought closest, which is where an
editor most likely adds a phrasing, or next to which they write a new entry.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bot.frustration import says_not_helped
from bot.kb.model import DEFAULT_LANGUAGE, KnowledgeBase, pick
from bot.kb.normalize import normalize
from bot.language import guess_language

NOT_UNDERSTOOD = "not_understood"
NOT_PICKED = "suggestion_not_picked"
NOT_HELPED = "not_helped"
ANSWER_HANDOFF = "answer_then_handoff"
GUIDE_HANDOFF = "guide_handoff"
KINDS = (NOT_UNDERSTOOD, NOT_PICKED, NOT_HELPED, ANSWER_HANDOFF, GUIDE_HANDOFF)
# What the NLU reads as small talk is not a question for the knowledge base.
SKIP_INTENTS = frozenset(
    (
        "greet",
        "goodbye",
        "thanks",
        "affirm",
        "deny",
        "bot_challenge",
        "request_human",
        "nonsense",
        "out_of_scope",
        "csat",
    ),
)
# Two questions whose vectors are this close (cosine, after taking away the mean of the
# knowledge base's phrasings, which every e5 vector shares) are taken to ask the same thing.
# Set by eye on a few paraphrase pairs (0.42-0.73) and pairs of neighbouring questions
# (0.19-0.77): e5-small cannot tell "change my number" from "change my password" apart
# reliably, so the cut-off errs towards splitting a question over two groups rather than
# mixing two questions in one.
SAME_MEANING = 0.6
MAX_ITEMS = 20_000  # the most recent unanswered questions considered
EXAMPLES = 3


@dataclass(frozen=True)
class Unanswered:
    """One customer question the bot did not answer well."""

    text: str
    kind: str
    conversation: str
    timestamp: float
    closest: str | None = None
    vector: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass
class Group:
    """Questions of one meaning, most recent last."""

    items: list[Unanswered]
    centroid: np.ndarray

    def as_json(self, kb: KnowledgeBase | None = None) -> dict[str, Any]:
        wordings = Counter()
        shown: dict[str, str] = {}
        for item in self.items:
            key = normalize(item.text)
            wordings[key] += 1
            shown.setdefault(key, item.text)
        closest = Counter(item.closest for item in self.items if item.closest).most_common(1)
        closest_id = closest[0][0] if closest else None
        entry = kb.get(closest_id) if (kb and closest_id) else None
        return {
            "count": len(self.items),
            "conversations": len({item.conversation for item in self.items}),
            "examples": [shown[key] for key, _ in wordings.most_common(EXAMPLES)],
            "languages": dict(Counter(guess_language(item.text) for item in self.items).most_common()),
            "kinds": dict(Counter(item.kind for item in self.items).most_common()),
            "closest": {"id": closest_id, "question": pick(entry.question, DEFAULT_LANGUAGE) if entry else None},
            "last_seen": max(item.timestamp for item in self.items),
        }


def _intent(event: dict[str, Any]) -> str | None:
    return ((event.get("parse_data") or {}).get("intent") or {}).get("name")


def _closest(match: dict[str, Any]) -> str | None:
    candidates = match.get("candidates") or []
    if candidates and isinstance(candidates[0], dict):
        return candidates[0].get("id")
    return match.get("id")


def _turns(events: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each customer message with the events that followed it, up to the next message."""
    turns: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for event in events:
        if event.get("event") == "user":
            turns.append((event, []))
        elif turns:
            turns[-1][1].append(event)
    return turns


def _slot(after: list[dict[str, Any]], name: str) -> Any:
    found = None
    for event in after:
        if event.get("event") == "slot" and event.get("name") == name:
            found = event.get("value")
    return found


def _handed_off(after: list[dict[str, Any]]) -> bool:
    return any(
        (event.get("event") == "action" and event.get("name") == "action_handoff")
        or (event.get("event") == "slot" and event.get("name") == "handoff_reason" and event.get("value"))
        for event in after
    )


def from_conversation(conversation: str, events: Sequence[dict[str, Any]]) -> Iterator[Unanswered]:
    """The unanswered questions of one conversation, in order."""
    from bot.conversation import DIM
    from bot.nlu.encoder import VECTOR_KEY, unpack_vector

    turns = _turns(events)
    guide_started: dict[str, tuple[dict[str, Any], str | None]] = {}
    for index, (user, after) in enumerate(turns):
        text = str(user.get("text") or "").strip()
        match = _slot(after, "kb_last_match")
        guide = _slot(after, "guide")
        following = turns[index + 1] if index + 1 < len(turns) else None
        packed = (user.get("parse_data") or {}).get(VECTOR_KEY)
        vector = unpack_vector(packed, DIM) if packed else None

        def item(kind: str, closest: str | None, text: str = text, vector=vector, user=user) -> Unanswered:
            return Unanswered(text, kind, conversation, float(user.get("timestamp") or 0), closest, vector)

        if isinstance(guide, dict) and guide.get("id"):
            if not guide.get("trail") and isinstance(match, dict) and match.get("id") == guide["id"]:
                guide_started[guide["id"]] = (user, vector)
            if guide.get("ended") == "handoff" and guide["id"] in guide_started:
                first_guide = (guide.get("trail") or [{}])[0].get("guide") or guide["id"]
                started, started_vector = guide_started.get(first_guide) or guide_started[guide["id"]]
                yield Unanswered(
                    str(started.get("text") or ""),
                    GUIDE_HANDOFF,
                    conversation,
                    float(started.get("timestamp") or 0),
                    first_guide,
                    started_vector,
                )
        if not text or text.startswith("/") or _intent(user) in SKIP_INTENTS or not isinstance(match, dict):
            continue
        decision = match.get("decision")
        if decision == "none":
            yield item(NOT_UNDERSTOOD, _closest(match))
        elif decision == "suggest":
            picked = following is not None and str(following[0].get("text") or "").startswith("/faq_choice")
            if following is not None and not picked:
                yield item(NOT_PICKED, _closest(match))
        elif decision == "answer" and following is not None:
            next_user, next_after = following
            if isinstance(guide, dict) and guide.get("id") == match.get("id"):
                continue  # a guide started: judged by how it ends
            if says_not_helped(str(next_user.get("text") or "")):
                yield item(NOT_HELPED, match.get("id"))
            elif _handed_off(next_after) and not _handed_off(after):
                yield item(ANSWER_HANDOFF, match.get("id"))


def from_events(events: Iterable[dict[str, Any]]) -> list[Unanswered]:
    """All unanswered questions in a stream of tracker events (any order of conversations,
    each conversation's events in order), most recent ``MAX_ITEMS``."""
    by_conversation: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_conversation.setdefault(str(event.get("sender_id") or ""), []).append(event)
    found: list[Unanswered] = []
    for conversation, conversation_events in by_conversation.items():
        found.extend(from_conversation(conversation, conversation_events))
    found.sort(key=lambda item: item.timestamp)
    return found[-MAX_ITEMS:]


def group(items: Sequence[Unanswered], threshold: float = SAME_MEANING, kb: KnowledgeBase | None = None) -> list[Group]:
    """Greedy grouping by cosine to each group's mean: one pass, so it scales with the
    number of groups, not pairs. Largest group first."""
    if not items:
        return []
    vectors = _centred(_vectors(items), kb)
    groups: list[Group] = []
    sums: list[np.ndarray] = []
    centroids = np.zeros((0, vectors.shape[1]), dtype=np.float32)
    for item, vector in zip(items, vectors, strict=True):
        if len(groups):
            sims = centroids @ vector
            best = int(sims.argmax())
            if sims[best] >= threshold:
                groups[best].items.append(item)
                sums[best] = sums[best] + vector
                centroids[best] = sums[best] / np.linalg.norm(sums[best])
                continue
        groups.append(Group([item], vector))
        sums.append(vector.copy())
        centroids = np.vstack([centroids, vector[None, :]])
    for index, g in enumerate(groups):
        g.centroid = centroids[index]
    return sorted(groups, key=lambda g: (-len(g.items), -max(i.timestamp for i in g.items)))


def _vectors(items: Sequence[Unanswered]) -> np.ndarray:
    """Unit vectors of the questions: the NLU's where the event carried one, else embedded."""
    missing = [index for index, item in enumerate(items) if item.vector is None]
    embedded = {}
    if missing:
        from bot.nlu.encoder import get_encoder

        computed = get_encoder().embed([items[index].text for index in missing])
        embedded = dict(zip(missing, computed, strict=True))
    rows = np.vstack([np.asarray(embedded.get(i, item.vector), dtype=np.float32) for i, item in enumerate(items)])
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms == 0, 1, norms)


def _centred(vectors: np.ndarray, kb: KnowledgeBase | None) -> np.ndarray:
    """Unit vectors minus the mean of the KB's phrasings (cache hits: the matcher embedded
    them), so what every support question shares does not make all of them look alike."""
    if kb is None or not len(kb):
        return vectors
    from bot.kb.typed_answers import question_examples
    from bot.nlu.encoder import get_encoder

    sample = get_encoder().embed(question_examples(kb))
    sample = sample / np.linalg.norm(sample, axis=1, keepdims=True)
    centred = vectors - sample.mean(axis=0)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    return (centred / np.where(norms == 0, 1, norms)).astype(np.float32)


def report(events: Iterable[dict[str, Any]], kb: KnowledgeBase | None = None) -> list[dict[str, Any]]:
    """The editors' report: groups as JSON-ready dicts, largest first."""
    return [g.as_json(kb) for g in group(from_events(events), kb=kb)]


def event_of(fields: dict) -> dict[str, Any] | None:
    """The tracker event in one entry of the broker's stream (``bot.broker.stream_fields``)."""
    raw = fields.get(b"data", fields.get("data"))
    try:
        event = json.loads(raw)
    except (TypeError, ValueError):
        return None
    return event if isinstance(event, dict) else None


def format_report(groups: list[dict[str, Any]], limit: int = 30) -> str:
    if not groups:
        return "No unanswered questions in the event stream."
    total = sum(g["count"] for g in groups)
    lines = [f"{total} unanswered question(s) in {len(groups)} group(s); the largest {min(limit, len(groups))}:", ""]
    for number, g in enumerate(groups[:limit], 1):
        languages = ", ".join(f"{code} {n}" for code, n in g["languages"].items())
        kinds = ", ".join(f"{kind} {n}" for kind, n in g["kinds"].items())
        closest = g["closest"]["id"] or "-"
        lines.append(f"{number}. x{g['count']} ({g['conversations']} conversation(s); {languages}; {kinds})")
        lines += [f'     "{example}"' for example in g["examples"]]
        lines.append(f"     closest entry: {closest}")
    return "\n".join(lines)
