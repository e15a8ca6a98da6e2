"""One recorded support day (Tuesday 17 November 2026, Europe/Berlin) as tracker events,
and the team lead's figures for it computed by hand.

The events have the shapes the real stack writes (checked by ``tests/e2e/test_kpis.py``
with live conversations): a session start, the customer's message with its channel and
intent, what the matcher decided (``kb_last_match``), the language, the handoff (``handoff``
slot, then ``pause``), the agent's greeting and replies (``bot`` with ``metadata.agent``),
the end of the handoff (``resume`` with ``metadata.handoff_end``) and the rating (``csat``).

The day, by conversation (times are Berlin time):

1. ``rest:kpi-alice`` 09:00 asks about her first bill; answered. Comes back at 15:00 (7)
   about the same bill: a repeat contact.
2. ``webchat:kpi-bob`` 09:10 (ru): a question the bot does not understand, then one it
   answers.
3. ``whatsapp:kpi-carol`` 09:30 (lv): "did you mean", she taps the choice.
4. ``rest:kpi-dave`` 10:00 asks about the bill, then asks for a person at 10:01; Ann joins
   at 10:03, writes at 10:04:30, closes at 10:20; rating 5 "quick and kind". Back at 18:00
   (10) about payment methods: another topic, not a repeat.
5. ``rest:kpi-erin`` 11:00, angry, nothing the bot knows: to a person (frustrated) at
   11:00:10; Ben joins at 11:10:10, writes at 11:11:10, closes at 11:40:10; types "2".
   Angry again the next day at 09:00 (11): a repeat (no entry: the reason is the topic).
6. ``webchat:kpi-frank`` 12:00 (sr): "did you mean", he writes again instead (unanswered),
   gets the returns answer, asks for a person at 12:02; nobody comes, he leaves.
8. ``whatsapp:kpi-grace`` 16:00 (tl): the router-lights guide, two typed answers, then a
   person (guide_exhausted) at 16:05; Ann joins 16:06, writes 16:08, hands back at 16:15.
9. ``rest:kpi-henry`` 17:00 opens a session and writes nothing: not a conversation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

ZONE = ZoneInfo("Europe/Berlin")
DAY = "2026-11-17"


def at(clock: str, day: str = DAY) -> float:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=ZONE).timestamp()


class _Script:
    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = {}

    def add(self, conversation: str, event: dict[str, Any]) -> None:
        self.events.setdefault(conversation, []).append(event)

    def session(self, c: str, t: float) -> None:
        self.add(c, {"event": "action", "name": "action_session_start", "timestamp": t - 0.002})
        self.add(c, {"event": "session_started", "timestamp": t - 0.001})
        self.add(c, {"event": "action", "name": "action_listen", "timestamp": t - 0.001})

    def user(self, c: str, t: float, text: str, channel: str, intent: str = "faq") -> None:
        parse = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": []}
        self.add(c, {"event": "user", "timestamp": t, "text": text, "input_channel": channel, "parse_data": parse})

    def match(self, c: str, t: float, decision: str, entry: str | None, language: str) -> None:
        value = {"query": "", "decision": decision, "id": entry, "score": 80.0, "candidates": []}
        self.add(c, {"event": "action", "name": "action_answer_faq", "timestamp": t + 0.1})
        self.add(c, {"event": "slot", "name": "kb_last_match", "value": value, "timestamp": t + 0.2})
        self.add(c, {"event": "slot", "name": "language", "value": language, "timestamp": t + 0.2})
        self.add(c, {"event": "bot", "text": "(the bot's answer)", "timestamp": t + 0.3})

    def handoff(self, c: str, t: float, reason: str, team: str, topic: str | None) -> None:
        info = {"reason": reason, "team": team, "topic": topic}
        self.add(c, {"event": "action", "name": "action_handoff", "timestamp": t})
        self.add(c, {"event": "bot", "text": "(you are number 1 in the queue)", "timestamp": t})
        self.add(c, {"event": "slot", "name": "handoff", "value": info, "timestamp": t})
        self.add(c, {"event": "slot", "name": "handoff_reason", "value": None, "timestamp": t})
        self.add(c, {"event": "pause", "timestamp": t})

    def joined(self, c: str, t: float, agent: str) -> None:
        metadata = {"agent": agent, "greeting": repr(t)}
        self.add(
            c, {"event": "bot", "text": f"You are now chatting with {agent}.", "timestamp": t, "metadata": metadata}
        )

    def agent_says(self, c: str, t: float, agent: str) -> None:
        self.add(c, {"event": "bot", "text": "(the agent's reply)", "timestamp": t, "metadata": {"agent": agent}})

    def ended(self, c: str, t: float, agent: str, how: str) -> None:
        self.add(c, {"event": "resume", "timestamp": t, "metadata": {"handoff_end": how, "agent": agent}})
        if how == "closed":
            self.add(c, {"event": "slot", "name": "csat", "value": {"asked": t}, "timestamp": t})
        self.add(c, {"event": "bot", "text": "(rating question or back to the bot)", "timestamp": t})

    def rated(self, c: str, t: float, asked: float, score: int, comment: str | None = None) -> None:
        value = {"asked": asked, "score": score, "rated": t, "comment": comment}
        self.add(c, {"event": "slot", "name": "csat", "value": value, "timestamp": t + 0.1})


def day_events() -> dict[str, list[dict[str, Any]]]:
    """Conversation id -> its events in order, with their recorded timestamps."""
    s = _Script()
    alice, bob, carol = "rest:kpi-alice", "webchat:kpi-bob", "whatsapp:kpi-carol"
    dave, erin, frank = "rest:kpi-dave", "rest:kpi-erin", "webchat:kpi-frank"
    grace, henry = "whatsapp:kpi-grace", "rest:kpi-henry"

    s.session(alice, at("09:00:00"))
    s.user(alice, at("09:00:00"), "why is my first bill so high", "rest")
    s.match(alice, at("09:00:00"), "answer", "billing-first-bill", "en")

    s.session(bob, at("09:10:00"))
    s.user(bob, at("09:10:00"), "можно арендовать проектор", "webchat")
    s.match(bob, at("09:10:00"), "none", None, "ru")
    s.user(bob, at("09:11:00"), "интернет не работает", "webchat")
    s.match(bob, at("09:11:00"), "answer", "outages-no-internet", "ru")

    s.session(carol, at("09:30:00"))
    s.user(carol, at("09:30:00"), "kā es varu samaksāt", "whatsapp")
    s.match(carol, at("09:30:00"), "suggest", "billing-payment-methods", "lv")
    s.user(carol, at("09:30:20"), '/faq_choice{"faq_id": "billing-payment-methods"}', "whatsapp", "faq_choice")
    s.match(carol, at("09:30:20"), "answer", "billing-payment-methods", "lv")

    s.session(dave, at("10:00:00"))
    s.user(dave, at("10:00:00"), "first bill question", "rest")
    s.match(dave, at("10:00:00"), "answer", "billing-first-bill", "en")
    s.user(dave, at("10:01:00"), "I want a person", "rest", "request_human")
    s.handoff(dave, at("10:01:00.500"), "asked_for_human", "billing", "billing")
    s.joined(dave, at("10:03:00.500"), "ann")
    s.agent_says(dave, at("10:04:30.500"), "ann")
    s.ended(dave, at("10:20:00"), "ann", "closed")
    s.user(dave, at("10:20:30"), "5 - quick and kind", "rest", "nonsense")
    s.rated(dave, at("10:20:30"), at("10:20:00"), 5, "quick and kind")

    s.session(erin, at("11:00:00"))
    s.user(erin, at("11:00:00"), "THIS IS A SCAM, 80 EUROS FOR WHAT", "rest")
    s.match(erin, at("11:00:00"), "none", None, "en")
    s.handoff(erin, at("11:00:10"), "frustrated", "general", None)
    s.joined(erin, at("11:10:10"), "ben")
    s.agent_says(erin, at("11:11:10"), "ben")
    s.ended(erin, at("11:40:10"), "ben", "closed")
    s.user(erin, at("11:41:00"), "2", "rest", "nonsense")
    s.rated(erin, at("11:41:00"), at("11:40:10"), 2)

    s.session(frank, at("12:00:00"))
    s.user(frank, at("12:00:00"), "vraćanje", "webchat")
    s.match(frank, at("12:00:00"), "suggest", "returns-policy", "sr")
    s.user(frank, at("12:01:00"), "kako da vratim ruter", "webchat")
    s.match(frank, at("12:01:00"), "answer", "returns-policy", "sr")
    s.user(frank, at("12:02:00"), "operater", "webchat", "request_human")
    s.handoff(frank, at("12:02:00.500"), "asked_for_human", "orders", "returns")

    s.session(alice, at("15:00:00"))
    s.user(alice, at("15:00:00"), "the first bill again", "rest")
    s.match(alice, at("15:00:00"), "answer", "billing-first-bill", "en")

    s.session(grace, at("16:00:00"))
    s.user(grace, at("16:00:00"), "pula ang ilaw ng router", "whatsapp")
    s.match(grace, at("16:00:00"), "answer", "devices-router-lights", "tl")
    s.user(grace, at("16:01:00"), "oo", "whatsapp", "affirm")
    s.match(grace, at("16:01:00"), "guide", "devices-router-lights", "tl")
    s.user(grace, at("16:03:00"), "hindi pa rin", "whatsapp", "deny")
    s.match(grace, at("16:03:00"), "guide", "devices-router-lights", "tl")
    s.handoff(grace, at("16:05:00"), "guide_exhausted", "technical", "troubleshooting-home")
    s.joined(grace, at("16:06:00"), "ann")
    s.agent_says(grace, at("16:08:00"), "ann")
    s.ended(grace, at("16:15:00"), "ann", "bot")

    s.session(henry, at("17:00:00"))

    s.session(dave, at("18:00:00"))
    s.user(dave, at("18:00:00"), "how can I pay", "rest")
    s.match(dave, at("18:00:00"), "answer", "billing-payment-methods", "en")

    s.session(erin, at("09:00:00", "2026-11-18"))
    s.user(erin, at("09:00:00", "2026-11-18"), "YOU ARE THIEVES", "rest")
    s.match(erin, at("09:00:00", "2026-11-18"), "none", None, "en")
    s.handoff(erin, at("09:00:05", "2026-11-18"), "frustrated", "general", None)
    return s.events


# The figures for 2026-11-17, worked out by hand from the day above (docs/kpis.md).
EXPECTED: dict[str, Any] = {
    "conversations": 9,  # henry wrote nothing; alice and dave count twice (two sessions each)
    "contained": 5,  # alice x2, bob, carol, dave's second
    "containment_rate": 0.5556,
    "handed_off": 4,  # dave, erin, frank, grace
    "handoff_rate": 0.4444,
    "handoff_by_reason": {
        "asked_for_human": {"count": 2, "rate": 0.2222},
        "frustrated": {"count": 1, "rate": 0.1111},
        "guide_exhausted": {"count": 1, "rate": 0.1111},
    },
    "reached_agent": 3,  # frank was never answered
    "time_to_agent": {"n": 3, "median_s": 120.0, "p90_s": 600.0},  # 120, 600, 60
    "first_response": {"n": 3, "median_s": 210.0, "p90_s": 660.0},  # 210, 660, 180
    "resolution": {"n": 2, "median_s": 1805.0, "p90_s": 2410.0},  # 1200, 2410
    "closed_by_agent": 2,
    "with_topic": 9,
    "first_contact_resolution": 0.7778,  # alice's first and erin's first came back: 7 of 9
    "repeat_contact_rate": 0.1111,  # alice's second (erin's second is on the 18th)
    "csat": {
        "ratings": 2,
        "average": 3.5,
        "distribution": {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1},
        "response_rate": 1.0,
    },
    "questions": 11,  # carol's tap and grace's two typed answers are not questions
    "unanswered": 3,  # bob's first, erin's, frank's "did you mean" he did not take
    "unanswered_rate": 0.2727,
}
EXPECTED_BY = {
    "channel": {"rest": 5, "webchat": 2, "whatsapp": 2},
    "language": {"en": 5, "ru": 1, "lv": 1, "sr": 1, "tl": 1},
    "team": {"billing": 1, "general": 1, "orders": 1, "technical": 1},
    "agent": {"ann": 2, "ben": 1},
}
EXPECTED_COMMENT = {"rating": 5, "agent": "ann", "text": "quick and kind"}
