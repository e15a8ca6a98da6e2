"""The team lead's figures, from the tracker events every conversation writes.

Three steps, each a plain function so the definitions in ``docs/kpis.md`` can be tested
line by line:

1. :func:`facts_of` keeps what the figures need from one tracker event (a customer
   message, what the matcher decided, a handoff, an agent joining or typing, the end of a
   handoff, a rating), as a small *fact* with no message text. The handoff service's KPI
   reader (``handoff/kpi_log.py``) appends the facts to their own stream, which outlives
   the bounded event stream and the conversations' retention.
2. :func:`fold` turns the facts back into conversations: one per Rasa session of a
   customer (a new session starts after an hour of silence), with its handoffs.
3. :func:`report` computes the figures over the conversations that started in a range of
   days, overall and by day, channel, team, language and agent.

Only conversations in which the customer wrote at least once are counted: a widget
opened and closed again, or a session Rasa started on its own, is not a conversation.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

MATCH_SLOT = "kb_last_match"
LANGUAGE_SLOT = "language"
HANDOFF_SLOT = "handoff"
CSAT_SLOT = "csat"
CHOICE_INTENT = "faq_choice"
REPEAT_WINDOW_S = 7 * 24 * 3600  # a new conversation on the same topic this soon is a repeat
CLOSED, BACK_TO_BOT = "closed", "bot"
UNKNOWN = "unknown"
MAX_COMMENT = 500
SAME_TURN_S = 30.0  # the handoff slot and the pause are written in one turn, within this time

# Fact kinds (kept to one letter: there is one fact per customer message, or two).
SESSION, MESSAGE, MATCH, LANGUAGE, HANDOFF, PAUSE = "s", "u", "m", "l", "h", "p"
JOINED, AGENT_MESSAGE, ENDED, RATING = "j", "a", "e", "c"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def facts_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    """What the figures need from one tracker event, with its conversation and time.

    Returns no fact for the events the figures do not use (most of them: actions, the
    bot's own words, other slots).
    """
    kind, name = event.get("event"), event.get("name")
    conversation = _str(event.get("sender_id"))
    stamp = event.get("timestamp")
    if conversation is None or not isinstance(stamp, (int, float)) or not math.isfinite(stamp):
        return []
    fact: dict[str, Any] = {"c": conversation, "t": round(float(stamp), 3)}
    metadata = event.get("metadata") if isinstance(event.get("metadata"), dict) else {}
    if kind in ("session_started", "restart"):
        fact["k"] = SESSION
    elif kind == "user":
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        fact.update(k=MESSAGE, ch=_str(event.get("input_channel")) or UNKNOWN, i=_str(intent))
    elif kind == "slot" and name == MATCH_SLOT and isinstance(event.get("value"), dict):
        value = event["value"]
        fact.update(k=MATCH, d=_str(value.get("decision")), e=_str(value.get("id")))
    elif kind == "slot" and name == LANGUAGE_SLOT and _str(event.get("value")):
        fact.update(k=LANGUAGE, l=event["value"])
    elif kind == "slot" and name == HANDOFF_SLOT and isinstance(event.get("value"), dict):
        value = event["value"]
        fact.update(k=HANDOFF, r=_str(value.get("reason")), tm=_str(value.get("team")), tp=_str(value.get("topic")))
        if _str(value.get("language")):
            fact["l"] = value["language"]
    elif kind == "slot" and name == CSAT_SLOT and isinstance(event.get("value"), dict):
        score, comment = event["value"].get("score"), _str(event["value"].get("comment"))
        if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
            return []  # the rating was asked for, not given yet
        fact.update(k=RATING, s=score, **({"cm": comment[:MAX_COMMENT]} if comment else {}))
    elif kind == "pause":
        fact["k"] = PAUSE
    elif kind == "resume":
        fact.update(k=ENDED, s=_str(metadata.get("handoff_end")), a=_str(metadata.get("agent")))
    elif kind == "bot" and _str(metadata.get("agent")):
        fact.update(k=JOINED if metadata.get("greeting") is not None else AGENT_MESSAGE, a=metadata["agent"])
    else:
        return []
    return [fact]


@dataclass
class Handoff:
    """One time the conversation went to a person."""

    at: float
    reason: str = UNKNOWN
    team: str = UNKNOWN
    topic: str | None = None
    joined_at: float | None = None
    agent: str | None = None
    first_response_at: float | None = None
    ended_at: float | None = None
    end: str | None = None  # closed | bot (handed back) | None (still open, or left)


@dataclass
class Conversation:
    """One Rasa session of one customer, as the figures see it."""

    customer: str
    started: float
    channel: str = UNKNOWN
    language: str = UNKNOWN
    messages: int = 0
    first_message_at: float | None = None
    questions: int = 0  # messages the knowledge base was asked (not a tap on "did you mean")
    unanswered: int = 0
    topics: list[str] = field(default_factory=list)
    handoffs: list[Handoff] = field(default_factory=list)
    rating: int | None = None
    comment: str | None = None  # what the customer added to the rating
    comment_at: float | None = None
    last_at: float = 0.0
    repeat: bool = False  # the customer had a conversation on the same topic in the 7 days before
    repeated: bool = False  # ... and another one in the 7 days after

    @property
    def handed_off(self) -> bool:
        return bool(self.handoffs)

    @property
    def handoff(self) -> Handoff | None:
        return self.handoffs[0] if self.handoffs else None

    @property
    def agent(self) -> str | None:
        """The agent who had the conversation last."""
        return next((h.agent for h in reversed(self.handoffs) if h.agent), None)

    @property
    def team(self) -> str | None:
        return self.handoffs[0].team if self.handoffs else None

    def topic_set(self) -> set[str]:
        """The entries the bot answered or offered; with none, a handoff's reason."""
        found = set(self.topics)
        if not found and self.handoffs:
            found.add(f"reason:{self.handoffs[0].reason}")
        return found


class _Folder:
    """Builds one customer's conversations from their facts in time order."""

    def __init__(self, customer: str) -> None:
        self.customer = customer
        self.done: list[Conversation] = []
        self.current: Conversation | None = None
        self.pending_handoff: dict[str, Any] | None = None
        self.open_suggestion = False  # the last question got "did you mean"; a tap answers it
        self.last_intent: str | None = None

    def _conversation(self, at: float) -> Conversation:
        if self.current is None:
            self.current = Conversation(self.customer, started=at)
        return self.current

    def _open(self) -> Handoff | None:
        conversation = self.current
        if conversation and conversation.handoffs and conversation.handoffs[-1].ended_at is None:
            return conversation.handoffs[-1]
        return None

    def add(self, fact: dict[str, Any]) -> None:
        kind, at = fact.get("k"), float(fact["t"])
        if kind == SESSION:
            # Rasa starts a session after an hour of silence even while a person has the
            # chat; that is still the same conversation.
            if self.current is not None and self._open() is None:
                self.done.append(self.current)
                self.current = None
            return
        conversation = self._conversation(at)
        conversation.last_at = max(conversation.last_at, at)
        if kind == MESSAGE:
            if conversation.messages == 0:
                conversation.channel = fact.get("ch") or UNKNOWN
                conversation.first_message_at = at
            conversation.messages += 1
            self.last_intent = fact.get("i")
            if fact.get("i") == CHOICE_INTENT:
                self.open_suggestion = False  # picked one: the question was answered
            elif self.open_suggestion:
                conversation.unanswered += 1  # wrote again instead of picking
                self.open_suggestion = False
        elif kind == MATCH:
            decision, entry = fact.get("d"), fact.get("e")
            if decision == "guide":
                return  # a typed answer to a guide's check, not a question
            if self.last_intent != CHOICE_INTENT:  # a tap on "did you mean" answers an earlier question
                conversation.questions += 1
                if decision == "none":
                    conversation.unanswered += 1
                self.open_suggestion = decision == "suggest"
            if entry and decision in ("answer", "suggest") and entry not in conversation.topics:
                conversation.topics.append(entry)
        elif kind == LANGUAGE:
            conversation.language = fact.get("l") or conversation.language
        elif kind == HANDOFF:
            if conversation.language == UNKNOWN and fact.get("l"):
                conversation.language = fact["l"]  # asked for a person before saying anything else
            handoff = self._open()
            if handoff is not None and handoff.reason == UNKNOWN and abs(at - handoff.at) < SAME_TURN_S:
                self._describe(handoff, fact)  # written in the same turn, read after the pause
            else:
                self.pending_handoff = fact
        elif kind == PAUSE:
            if self._open() is not None:
                return  # paused again while still with a person (a new session re-pauses)
            self._close_suggestion(conversation)
            handoff = Handoff(at=at)
            if self.pending_handoff is not None and abs(at - float(self.pending_handoff["t"])) < SAME_TURN_S:
                self._describe(handoff, self.pending_handoff)
            self.pending_handoff = None
            conversation.handoffs.append(handoff)
        elif kind == JOINED:
            handoff = self._open()
            if handoff is not None:
                handoff.agent = fact.get("a")
                if handoff.joined_at is None:
                    handoff.joined_at = at
        elif kind == AGENT_MESSAGE:
            handoff = self._open()
            if handoff is not None:
                handoff.agent = handoff.agent or fact.get("a")
                if handoff.first_response_at is None:
                    handoff.first_response_at = at
        elif kind == ENDED:
            handoff = self._open()
            if handoff is not None:
                handoff.ended_at, handoff.end = at, fact.get("s")
                handoff.agent = fact.get("a") or handoff.agent
        elif kind == RATING:
            if conversation.rating is None:
                conversation.rating = int(fact["s"])
            if fact.get("cm"):
                conversation.comment, conversation.comment_at = str(fact["cm"]), at

    @staticmethod
    def _describe(handoff: Handoff, fact: dict[str, Any]) -> None:
        handoff.reason = fact.get("r") or UNKNOWN
        handoff.team = fact.get("tm") or UNKNOWN
        handoff.topic = fact.get("tp")

    def _close_suggestion(self, conversation: Conversation) -> None:
        if self.open_suggestion:  # went to a person instead of picking
            conversation.unanswered += 1
            self.open_suggestion = False

    def finish(self) -> list[Conversation]:
        if self.current is not None:
            if self.open_suggestion:
                self.current.unanswered += 1
            self.done.append(self.current)
            self.current = None
        return self.done


def fold(facts: Iterable[dict[str, Any]]) -> list[Conversation]:
    """Conversations from facts (in any order; replicas may write them interleaved)."""
    by_customer: dict[str, list[tuple[float, int, dict[str, Any]]]] = defaultdict(list)
    seen: set[tuple] = set()
    for order, fact in enumerate(facts):
        if isinstance(fact.get("c"), str) and isinstance(fact.get("t"), (int, float)):
            # The event stream is read at least once: an event handled again after a crash,
            # before its acknowledgement, writes the same fact twice. It counts once.
            key = tuple(sorted((k, str(v)) for k, v in fact.items()))
            if key in seen:
                continue
            seen.add(key)
            by_customer[fact["c"]].append((float(fact["t"]), order, fact))
    conversations: list[Conversation] = []
    for customer, items in by_customer.items():
        folder = _Folder(customer)
        for _, _, fact in sorted(items, key=lambda item: (item[0], item[1])):
            folder.add(fact)
        conversations.extend(c for c in folder.finish() if c.messages > 0)
    mark_repeats(conversations)
    return sorted(conversations, key=lambda c: c.started)


def mark_repeats(conversations: Sequence[Conversation], window_s: float = REPEAT_WINDOW_S) -> None:
    """A conversation is a *repeat* when the same customer had one on a shared topic in the
    ``window_s`` before it; the earlier one is then *repeated* (not resolved at first contact)."""
    by_customer: dict[str, list[Conversation]] = defaultdict(list)
    for conversation in conversations:
        by_customer[conversation.customer].append(conversation)
    for items in by_customer.values():
        items.sort(key=lambda c: c.started)
        for i, later in enumerate(items):
            topics = later.topic_set()
            for earlier in items[:i]:
                if topics and later.started - earlier.started <= window_s and topics & earlier.topic_set():
                    later.repeat = True
                    earlier.repeated = True


# --- the figures -------------------------------------------------------------------------


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _durations(values: list[float]) -> dict[str, float | int | None]:
    values = sorted(v for v in values if v >= 0)
    if not values:
        return {"n": 0, "median_s": None, "p90_s": None}
    p90 = values[min(len(values) - 1, math.ceil(0.9 * len(values)) - 1)]
    return {"n": len(values), "median_s": round(statistics.median(values), 1), "p90_s": round(p90, 1)}


def figures(conversations: Sequence[Conversation]) -> dict[str, Any]:
    """Every KPI of ``docs/kpis.md`` over one set of conversations."""
    n = len(conversations)
    handed = [c for c in conversations if c.handed_off]
    reasons: dict[str, int] = defaultdict(int)
    for conversation in handed:
        reasons[conversation.handoff.reason] += 1
    joined = [c.handoff for c in handed if c.handoff.joined_at is not None]
    responded = [c.handoff for c in handed if c.handoff.first_response_at is not None]
    closed = [c for c in handed if any(h.end == CLOSED for h in c.handoffs)]
    resolution = [
        next(h.ended_at for h in c.handoffs if h.end == CLOSED) - (c.first_message_at or c.started) for c in closed
    ]
    with_topic = [c for c in conversations if c.topic_set()]
    ratings = [c.rating for c in conversations if c.rating is not None]
    questions = sum(c.questions for c in conversations)
    unanswered = sum(c.unanswered for c in conversations)
    return {
        "conversations": n,
        "contained": n - len(handed),
        "containment_rate": _rate(n - len(handed), n),
        "handed_off": len(handed),
        "handoff_rate": _rate(len(handed), n),
        "handoff_by_reason": {r: {"count": k, "rate": _rate(k, n)} for r, k in sorted(reasons.items())},
        "reached_agent": len(joined),
        "time_to_agent": _durations([h.joined_at - h.at for h in joined]),
        "first_response": _durations([h.first_response_at - h.at for h in responded]),
        "resolution": _durations(resolution),
        "closed_by_agent": len(closed),
        "with_topic": len(with_topic),
        "first_contact_resolution": _rate(sum(not c.repeated for c in with_topic), len(with_topic)),
        "repeat_contact_rate": _rate(sum(c.repeat for c in with_topic), len(with_topic)),
        "csat": {
            "ratings": len(ratings),
            "average": round(sum(ratings) / len(ratings), 2) if ratings else None,
            "distribution": {str(s): ratings.count(s) for s in range(1, 6)},
            "response_rate": _rate(sum(1 for c in closed if c.rating is not None), len(closed)),
        },
        "questions": questions,
        "unanswered": unanswered,
        "unanswered_rate": _rate(unanswered, questions),
    }


def day_of(stamp: float, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(stamp, zone).date()


def report(conversations: Sequence[Conversation], first: date, last: date, zone: ZoneInfo) -> dict[str, Any]:
    """The figures for conversations that started from ``first`` to ``last`` (inclusive,
    days in the deployment's time zone): overall, and by day, channel, team, language, agent."""
    inside = [c for c in conversations if first <= day_of(c.started, zone) <= last]
    groups: dict[str, dict[str, list[Conversation]]] = {
        key: defaultdict(list) for key in ("day", "channel", "team", "language", "agent")
    }
    day = first
    while day <= last:  # every day of the range, with or without conversations
        groups["day"][day.isoformat()] = []
        day += timedelta(days=1)
    for conversation in inside:
        groups["day"][day_of(conversation.started, zone).isoformat()].append(conversation)
        groups["channel"][conversation.channel].append(conversation)
        groups["language"][conversation.language].append(conversation)
        if conversation.team:
            groups["team"][conversation.team].append(conversation)
        if conversation.agent:
            groups["agent"][conversation.agent].append(conversation)
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "time_zone": zone.key,
        "summary": figures(inside),
        **{f"by_{key}": {name: figures(items) for name, items in sorted(g.items())} for key, g in groups.items()},
    }


CSV_COLUMNS = (
    "started",
    "conversation",
    "channel",
    "language",
    "messages",
    "questions",
    "unanswered",
    "handed_off",
    "reason",
    "team",
    "agent",
    "time_to_agent_s",
    "first_response_s",
    "ended",
    "rating",
    "topics",
    "repeat",
    "repeated_within_7_days",
)


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: a leading = + - @ would start a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(conversations: Sequence[Conversation], zone: ZoneInfo) -> str:
    """One row per conversation, for a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for c in conversations:
        h = c.handoff
        writer.writerow(
            [
                _cell(value)
                for value in (
                    datetime.fromtimestamp(c.started, zone).isoformat(timespec="seconds"),
                    c.customer,
                    c.channel,
                    c.language,
                    c.messages,
                    c.questions,
                    c.unanswered,
                    "yes" if h else "no",
                    h.reason if h else "",
                    h.team if h else "",
                    c.agent or "",
                    round(h.joined_at - h.at, 1) if h and h.joined_at else "",
                    round(h.first_response_at - h.at, 1) if h and h.first_response_at else "",
                    (h.end or "") if h else "",
                    c.rating or "",
                    " ".join(sorted(c.topic_set())),
                    "yes" if c.repeat else "no",
                    "yes" if c.repeated else "no",
                )
            ]
        )
    return out.getvalue()
