"""What the bot could not answer, read from tracker events as the broker writes them, and
grouped by meaning with the real sentence encoder (``bot.kb.unanswered``)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

from bot.kb import unanswered
from bot.kb.loader import load
from bot.settings import ROOT

KB = load(ROOT / "data" / "faq")
_clock = itertools.count(1_700_000_000)


def user(text: str, intent: str = "faq") -> dict:
    return {"event": "user", "text": text, "parse_data": {"intent": {"name": intent}}, "timestamp": next(_clock)}


def matched(decision: str, entry: str | None, *candidates: str) -> dict:
    value = {"query": "", "decision": decision, "id": entry, "score": 50.0}
    value["candidates"] = [{"id": c, "score": 40.0} for c in candidates or ([entry] if entry else [])]
    return {"event": "slot", "name": "kb_last_match", "value": value, "timestamp": next(_clock)}


def bot(text: str) -> dict:
    return {"event": "bot", "text": text, "timestamp": next(_clock)}


def conversation(sender: str, *events: dict) -> list[dict]:
    return [{**event, "sender_id": sender} for event in events]


def test_each_way_of_not_answering_is_found_and_the_rest_is_not() -> None:
    events = [
        *conversation("a", user("do you sell gift cards?"), matched("none", None, "plans-compare"), bot("...")),
        *conversation("b", user("refund"), matched("suggest", None, "billing-refund", "returns-refund"), user("hmm")),
        *conversation("c", user("refund"), matched("suggest", None, "billing-refund"), user("/faq_choice{}")),
        *conversation(
            "d", user("how do I pay"), matched("answer", "billing-pay-bill"), user("that didn't help at all")
        ),
        *conversation(
            "e",
            user("where is my parcel"),
            matched("answer", "delivery-track-order"),
            user("person please", "request_human"),
            {"event": "action", "name": "action_handoff", "timestamp": next(_clock)},
        ),
        *conversation("f", user("hello", "greet"), user("thanks", "thanks"), user("/request_human")),
    ]
    found = {(item.conversation, item.kind, item.text) for item in unanswered.from_events(events)}
    assert found == {
        ("a", unanswered.NOT_UNDERSTOOD, "do you sell gift cards?"),
        ("b", unanswered.NOT_PICKED, "refund"),
        ("d", unanswered.NOT_HELPED, "how do I pay"),
        ("e", unanswered.ANSWER_HANDOFF, "where is my parcel"),
    }


def test_a_guide_that_ended_with_a_person_counts_its_first_question() -> None:
    start = {"id": "outages-no-internet", "step": "status", "trail": []}
    ended = {**start, "trail": [{"guide": "outages-no-internet", "step": "status", "option": 1}], "ended": "handoff"}
    events = conversation(
        "g",
        user("no internet since this morning"),
        matched("answer", "outages-no-internet"),
        {"event": "slot", "name": "guide", "value": start},
        user('/guide_answer{"guide_option": 1}', "guide_answer"),
        {"event": "slot", "name": "guide", "value": ended},
    )
    [item] = unanswered.from_events(events)
    assert (item.kind, item.text, item.closest) == (
        unanswered.GUIDE_HANDOFF,
        "no internet since this morning",
        "outages-no-internet",
    )


def test_the_same_question_in_other_words_and_languages_is_one_group_and_another_is_not() -> None:
    events = []
    asked = [
        "Do you sell gift cards?",
        "do you sell gift cards",
        "can I buy a gift card from you",
        "what's the maximum upload speed of the fibre plan",
    ]
    for number, text in enumerate(asked):
        events += conversation(f"c{number}", user(text), matched("none", None), user("ok then"))
    groups = unanswered.report(events, KB)
    assert groups[0]["count"] >= 2 and "gift card" in groups[0]["examples"][0].lower(), groups
    speed = next(g for g in groups if "upload" in g["examples"][0])
    assert speed["count"] == 1 and groups[0]["languages"] == {"en": groups[0]["count"]}


def test_the_command_prints_the_groups_from_a_file_of_events(tmp_path) -> None:
    events = [
        *conversation("x", user("do you sell gift cards?"), matched("none", None, "plans-compare"), bot("?")),
        *conversation("y", user("Do you sell gift cards"), matched("none", None, "plans-compare"), bot("?")),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\nnot json\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bot.kb", "unanswered", "--events", str(path), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    [group] = json.loads(done.stdout)
    assert group["count"] == 2 and group["conversations"] == 2
    assert group["kinds"] == {"not_understood": 2} and group["closest"]["id"] == "plans-compare"
    assert f"{path}:{len(events) + 1}: not a JSON event" in done.stderr
