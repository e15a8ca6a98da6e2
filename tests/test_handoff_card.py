"""What the agent's handoff card is built from: plain tracker events, no server."""

from __future__ import annotations

from bot.conversation import card_fields, customer_turns, since_bot_took_over, summary
from bot.frustration import assess
from bot.kb import load
from bot.language import guess_language
from bot.transcript import transcript
from handoff.queue import Card, estimate_wait_minutes
from tests.conftest import DEMO_KB


def user(text: str) -> dict:
    return {"event": "user", "text": text, "timestamp": 1.0}


def bot(text: str, agent: str | None = None) -> dict:
    event = {"event": "bot", "text": text, "timestamp": 2.0}
    if agent:
        event["metadata"] = {"agent": agent}
    return event


def match(decision: str, entry_id: str | None, score: float = 90.0) -> dict:
    value = {"query": "q", "decision": decision, "id": entry_id, "score": score, "candidates": []}
    return {"event": "slot", "name": "kb_last_match", "value": value}


def test_turns_carry_what_the_bot_did_with_each_message() -> None:
    kb = load(DEMO_KB)
    sensitive = next(e.id for e in kb.entries if e.handoff)
    events = [
        user("hi"),
        bot("Hi!"),
        user("my phone was stolen"),
        match("answer", sensitive),
        bot("..."),
        user("asdf"),
        match("none", None),
    ]
    turns = customer_turns(events, kb)
    assert [(t.text, t.outcome, t.sensitive) for t in turns] == [
        ("hi", None, False),
        ("my phone was stolen", "answer", True),
        ("asdf", "none", False),
    ]


def test_anger_before_a_hand_back_is_not_held_against_the_customer_again() -> None:
    events = [user("THIS IS USELESS!!! I HATE THIS"), {"event": "pause"}, {"event": "resume"}, user("how do I pay?")]
    recent = since_bot_took_over(events)
    assert recent == [user("how do I pay?")]
    assert not assess(customer_turns(recent)).handoff


def test_summary_keeps_the_last_exchanges_short_and_skips_button_payloads() -> None:
    events = [user("/faq_choice{}"), *[e for i in range(10) for e in (user(f"q{i}"), bot("a" * 500))]]
    lines = summary(events)
    assert len(lines) == 8 and lines[0].startswith("Customer: q6")
    assert all(len(line) < 200 for line in lines)


def test_card_fields_name_reason_language_and_kb_tries() -> None:
    events = [user("Не работает интернет"), match("suggest", "outages-no-internet", 70.0), bot("...")]
    fields = card_fields(events, None)
    assert fields["reason"] == "asked_for_human" and fields["language"] == "ru"
    assert fields["kb_matches"] == [{"query": "q", "decision": "suggest", "id": "outages-no-internet", "score": 70.0}]


def test_language_guess_by_script() -> None:
    assert guess_language("როგორ გადავიხადო") == "ka"
    assert guess_language("как оплатить") == "ru"
    assert guess_language("how do I pay") == "en"
    assert guess_language("12345") == "en"


def test_priority_rises_with_frustration_sensitivity_and_vip() -> None:
    calm = Card("a", "asked_for_human", scores=[0.3])
    angry = Card("b", "frustrated", scores=[0.2, 0.9])
    vip = Card("c", "asked_for_human", scores=[0.1], vip=True)
    assert calm.priority < angry.priority < vip.priority
    assert Card.from_json(angry.to_json()) == angry


def test_wait_estimate_is_honest() -> None:
    assert estimate_wait_minutes(3, agents_online=0, free_slots=0, avg_handle_minutes=4) is None
    assert estimate_wait_minutes(1, agents_online=2, free_slots=1, avg_handle_minutes=4) == 1
    assert estimate_wait_minutes(5, agents_online=2, free_slots=1, avg_handle_minutes=4) == 8


def test_transcript_separates_customer_bot_agent_and_system_turns() -> None:
    tracker = {"events": [user("hi"), bot("Hello"), {"event": "pause"}, bot("I'm Ann", agent="ann"), user("/csat{}")]}
    roles = [(t["role"], t.get("agent")) for t in transcript(tracker)]
    assert roles == [("customer", None), ("bot", None), ("system", None), ("agent", "ann"), ("customer", None)]
    assert transcript(tracker)[-1]["text"].startswith("[pressed a button")


def test_customer_is_told_only_what_the_team_can_keep() -> None:
    from actions.handoff import waiting_message

    assert "number 2 in the queue" in waiting_message(2, 5) and "about 5 minutes" in waiting_message(2, 5)
    assert "No one is available right now" in waiting_message(2, None)
    after_hours = waiting_message(2, 5, back="tomorrow at 08:00")
    assert "tomorrow at 08:00" in after_hours and "queue" not in after_hours
    assert waiting_message(3, 4, language="ru").startswith("Соединяю вас с сотрудником поддержки. Вы 3-й в очереди")
    assert "რიგში ხართ 3-ე" in waiting_message(3, 4, language="ka")


def test_a_tapped_button_shows_as_its_title_on_every_channel() -> None:
    """The agent reads "[pressed: Show my bill]", never a payload or an intent name: from the
    title the channel passed on, or from the buttons the bot had just offered."""
    offered = {
        "event": "bot",
        "text": "Did you mean",
        "data": {
            "buttons": [
                {"title": "Show my bill", "payload": '/faq_choice{"faq_id": "billing-first-bill"}'},
                {"title": "Talk to a person", "payload": "/request_human"},
            ]
        },
    }
    tap = user('/faq_choice{"faq_id": "billing-first-bill"}')
    assert transcript({"events": [offered, tap]})[-1]["text"] == "[pressed: Show my bill]"
    titled = {**user("/request_human"), "metadata": {"button_title": "Talk to a person"}}
    assert transcript({"events": [titled]})[-1]["text"] == "[pressed: Talk to a person]"
    assert transcript({"events": [user("/unknown")]})[-1]["text"] == "[pressed a button]"


def test_the_card_never_shows_a_raw_payload_as_what_the_customer_asked() -> None:
    from bot.conversation import kb_matches

    pick = {"query": '/faq_choice{"faq_id": "x"}', "decision": "answer", "id": "x", "score": 100.0}
    (match,) = kb_matches([{"event": "slot", "name": "kb_last_match", "value": pick}])
    assert "{" not in match["query"] and match["id"] == "x"
