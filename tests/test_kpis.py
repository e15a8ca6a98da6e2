"""The team lead's figures (docs/kpis.md) from a hand-computed day, and each definition's
edges: what counts as a conversation, a question, a repeat; CSV cells; typed ratings."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from bot.csat import rating_in, state
from bot.teams import load_teams, parse_teams, topic_of
from handoff import kpis
from tests.conftest import ROOT
from tests.kpi_day import DAY, EXPECTED, EXPECTED_BY, EXPECTED_COMMENT, ZONE, at, day_events


def day_facts() -> list[dict]:
    facts = []
    for conversation, events in day_events().items():
        for event in events:
            facts += kpis.facts_of({**event, "sender_id": conversation})
    return facts


def test_the_recorded_day_gives_the_hand_computed_figures() -> None:
    conversations = kpis.fold(day_facts())
    day = date.fromisoformat(DAY)
    got = kpis.report(conversations, day, day, ZONE)
    assert got["summary"] == EXPECTED
    for key, counts in EXPECTED_BY.items():
        assert {name: f["conversations"] for name, f in got[f"by_{key}"].items()} == counts, key
    assert list(got["by_day"]) == [DAY]
    rated = [c for c in conversations if c.comment]
    assert [(c.rating, c.agent, c.comment) for c in rated] == [tuple(EXPECTED_COMMENT.values())]


def test_rates_partition_the_conversations() -> None:
    """Containment and handoff rates add up to 100%; the reasons add up to the handoff rate
    (a peer's dashboard summed past 100% by counting a conversation under two reasons)."""
    day = date.fromisoformat(DAY)
    summary = kpis.report(kpis.fold(day_facts()), day, day, ZONE)["summary"]
    assert summary["contained"] + summary["handed_off"] == summary["conversations"]
    assert sum(r["count"] for r in summary["handoff_by_reason"].values()) == summary["handed_off"]


def test_facts_hold_no_message_text() -> None:
    secret = "my card number is 4111 1111 1111 1111"
    event = {"event": "user", "sender_id": "rest:x", "timestamp": 1.0, "text": secret, "input_channel": "rest"}
    event["parse_data"] = {"intent": {"name": "faq"}, "text": secret}
    assert all(secret not in str(fact) for fact in kpis.facts_of(event))


def test_events_the_figures_do_not_use_give_no_fact() -> None:
    for event in (
        {"event": "action", "name": "action_listen"},
        {"event": "bot", "text": "hello"},
        {"event": "slot", "name": "guide", "value": {}},
        {"event": "slot", "name": "csat", "value": {"asked": 5.0}},  # asked, not rated yet
        {"event": "user", "timestamp": float("nan")},
        {"event": "user", "timestamp": "yesterday"},
    ):
        assert kpis.facts_of({"sender_id": "rest:x", "timestamp": 1.0, **event}) == [], event


def test_a_bot_reply_never_counts_as_a_first_response() -> None:
    """Only a person's words are a first response; the automatic "you are chatting with" is not."""
    c = "rest:frt"
    events = [
        {"event": "session_started", "timestamp": 0.0},
        {"event": "user", "timestamp": 1.0, "input_channel": "rest", "parse_data": {"intent": {"name": "x"}}},
        {"event": "pause", "timestamp": 2.0},
        {"event": "bot", "timestamp": 3.0, "text": "queue position 1"},
        {"event": "bot", "timestamp": 50.0, "metadata": {"agent": "ann", "greeting": "50"}},
    ]
    facts = [f for e in events for f in kpis.facts_of({**e, "sender_id": c})]
    (conversation,) = kpis.fold(facts)
    assert conversation.handoff.joined_at == 50.0
    assert conversation.handoff.first_response_at is None
    events.append({"event": "bot", "timestamp": 80.0, "metadata": {"agent": "ann"}})
    facts = [f for e in events for f in kpis.facts_of({**e, "sender_id": c})]
    (conversation,) = kpis.fold(facts)
    assert conversation.handoff.first_response_at - conversation.handoff.at == 78.0


def test_a_new_session_while_with_a_person_is_the_same_conversation() -> None:
    c = "rest:long"
    events = [
        {"event": "session_started", "timestamp": 0.0},
        {"event": "user", "timestamp": 1.0, "input_channel": "rest"},
        {"event": "pause", "timestamp": 2.0},
        {"event": "session_started", "timestamp": 4000.0},  # an hour later, still waiting
        {"event": "pause", "timestamp": 4000.0},
        {"event": "user", "timestamp": 4001.0, "input_channel": "rest"},
        {"event": "bot", "timestamp": 4100.0, "metadata": {"agent": "ann", "greeting": "x"}},
    ]
    (conversation,) = kpis.fold(f for e in events for f in kpis.facts_of({**e, "sender_id": c}))
    assert len(conversation.handoffs) == 1 and conversation.messages == 2
    assert conversation.handoff.joined_at - conversation.handoff.at == 4098.0


def test_facts_in_any_order_fold_the_same() -> None:
    facts = day_facts()
    day = date.fromisoformat(DAY)
    shuffled = list(reversed(facts))
    assert kpis.report(kpis.fold(shuffled), day, day, ZONE)["summary"] == EXPECTED


def test_an_event_recorded_twice_counts_once() -> None:
    """The stream is read at least once: after a crash between handling an event and its
    acknowledgement, the reader records it again; the figures must not change."""
    facts = day_facts()
    day = date.fromisoformat(DAY)
    assert kpis.report(kpis.fold(facts + facts[::3]), day, day, ZONE)["summary"] == EXPECTED


def test_a_repeat_needs_the_same_customer_and_topic_within_seven_days() -> None:
    def conversation(customer: str, started: float, topic: str) -> kpis.Conversation:
        return kpis.Conversation(customer, started=started, messages=1, topics=[topic])

    week = kpis.REPEAT_WINDOW_S
    items = [
        conversation("a", 0, "bill"),
        conversation("a", week + 1, "bill"),  # too late: a new matter
        conversation("b", 10, "bill"),  # someone else
        conversation("a", week + 100, "wifi"),  # another topic
    ]
    kpis.mark_repeats(items)
    assert [(c.repeat, c.repeated) for c in items] == [(False, False)] * 4
    items.append(conversation("a", week + 200, "bill"))
    kpis.mark_repeats(items)
    assert items[1].repeated and items[4].repeat


def test_csv_has_a_row_per_conversation_and_never_a_formula() -> None:
    conversations = kpis.fold(day_facts())
    conversations[0].customer = '=HYPERLINK("http://evil")'
    rows = list(csv.reader(io.StringIO(kpis.to_csv(conversations, ZONE))))
    assert rows[0] == list(kpis.CSV_COLUMNS)
    assert len(rows) == 1 + len(conversations)
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows[1:] for cell in row)
    assert rows[1][1].startswith("'=")


def test_days_follow_the_teams_time_zone() -> None:
    """23:30 in Berlin on the 17th is the 17th's, though it is the 17th 22:30 in UTC; 00:30
    on the 18th in Berlin is the 18th's, though UTC still says the 17th."""
    late, early = at("23:30:00"), at("00:30:00", "2026-11-18")
    facts = []
    for c, t in (("rest:late", late), ("rest:early", early)):
        facts += kpis.facts_of({"event": "user", "sender_id": c, "timestamp": t, "input_channel": "rest"})
    got = kpis.report(kpis.fold(facts), date(2026, 11, 17), date(2026, 11, 18), ZONE)
    assert {d: f["conversations"] for d, f in got["by_day"].items()} == {"2026-11-17": 1, "2026-11-18": 1}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("4", (4, None)),
        (" 5 ", (5, None)),
        ("4/5", (4, None)),
        ("3 out of 5", (3, None)),
        ("5 stars", (5, None)),
        ("4 из 5", (4, None)),
        ("4 od 5", (4, None)),
        ("⭐⭐⭐", (3, None)),
        ("5 - quick and kind", (5, "quick and kind")),
        ("2, nobody answered for an hour", (2, "nobody answered for an hour")),
        ("10", None),
        ("0", None),
        ("2 days ago my internet stopped", None),
        ("1 month free?", None),
        ("", None),
    ],
)
def test_typed_ratings(text: str, expected) -> None:
    assert rating_in(text) == expected


def test_a_rating_is_taken_for_a_day_and_a_comment_right_after() -> None:
    assert state(None, 0) is None
    assert state({"asked": 0.0}, 3600) == "rating"
    assert state({"asked": 0.0}, 2 * 86400) is None
    assert state({"asked": 0.0, "score": 4, "rated": 10.0, "comment": None}, 20) == "comment"
    assert state({"asked": 0.0, "score": 4, "rated": 10.0, "comment": None}, 10 + 3600) is None
    assert state({"asked": 0.0, "score": 4, "rated": 10.0, "comment": "ok"}, 20) is None


def test_teams_file_maps_every_demo_topic_to_a_team() -> None:
    teams = load_teams(ROOT / "data" / "console" / "teams.yml")
    topics = {topic_of(str(path)) for path in (ROOT / "data" / "faq").glob("*.yml")}
    unassigned = {t for t in topics if not any(t in team.topics for team in teams.teams.values())}
    assert not unassigned, f"knowledge-base files no team handles: {sorted(unassigned)}"
    assert teams.team_for("billing") == "billing"
    assert teams.team_for(None, "guide_exhausted") == "technical"
    assert teams.team_for(None, "asked_for_human") == teams.default


@pytest.mark.parametrize(
    "data, message",
    [
        ({"teams": []}, "needs a 'teams:' mapping"),
        ({"teams": {"Bad Name": {}}}, "may use only"),
        ({"teams": {"a": {"topics": "billing"}}}, "must be a list"),
        ({"teams": {"a": {}}, "default": "b"}, "default team 'b'"),
    ],
)
def test_a_broken_teams_file_says_what_is_wrong(data, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_teams(data)
