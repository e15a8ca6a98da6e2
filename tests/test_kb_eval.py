"""``python -m bot.kb eval``: the figures a team tunes the matcher by, counted right."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.kb import Matcher, load
from bot.kb.evaluate import Case, EvalFileError, evaluate, read_cases
from bot.kb.matcher import ANSWER, NONE
from tests.conftest import DEMO_KB, ROOT

QUERIES = [
    "How can I pay my bill?",
    "how do I return an item",
    "how do I cancel my contract",
    "my bill is higher than usual",
    "banana pancake recipe",
    "asdf jkl qwe",
]


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load(DEMO_KB))


def test_the_figures_count_what_the_matcher_did(matcher: Matcher) -> None:
    matches = {q: matcher.match(q) for q in QUERIES}
    answered = [q for q in QUERIES if matches[q].decision == ANSWER]
    declined = [q for q in QUERIES if matches[q].decision == NONE]
    assert len(answered) >= 3 and declined, matches  # the demo KB answers these, and not nonsense
    wrong = "billing-pay-bill" if matches[answered[1]].id != "billing-pay-bill" else "returns-how-to"
    cases = [
        Case(answered[0], matches[answered[0]].id),  # right and answered
        Case(answered[1], wrong),  # answered, but not what the label says
        Case(declined[0], None),  # out of scope and declined
        Case(answered[2], None),  # labelled out of scope, yet answered
    ]
    report = evaluate(matcher, cases)
    figures = report.as_json()
    assert (report.in_scope, report.out_of_scope) == (2, 2)
    assert figures["right_first"] == 0.5 and figures["coverage"] == 1.0 and figures["accuracy_of_answers"] == 0.5
    assert figures["out_of_scope_declined"] == 0.5
    confusions = {(c["expected"], c["got"]) for c in figures["worst_confusions"]}
    assert confusions == {(wrong, matches[answered[1]].id), ("none", matches[answered[2]].id)}


def test_the_file_is_read_with_clear_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text('query,expected_id\n# a comment\n"where is it, my order?",delivery-track\nhello there,none\n\n')
    assert read_cases(good, ["delivery-track"]) == [
        Case("where is it, my order?", "delivery-track"),
        Case("hello there", None),
    ]
    for text, message in [
        ("a,b,c\n", "good.csv:1: expected 2 columns"),
        ("q,\n", "good.csv:1: both the query"),
        ("q,no-such-entry\n", "good.csv:1: no entry with id 'no-such-entry'"),
        ("query,expected_id\n", "no questions"),
    ]:
        good.write_text(text)
        with pytest.raises(EvalFileError, match=message):
            read_cases(good, ["delivery-track"])


def test_the_command_prints_the_figures_and_refuses_a_bad_file(tmp_path: Path) -> None:
    cases = tmp_path / "held-out.csv"
    cases.write_text("query,expected_id\nHow can I pay my bill?,billing-pay-bill\nbanana pancake recipe,none\n")
    command = [sys.executable, "-m", "bot.kb", "eval", str(cases), "--kb", str(DEMO_KB)]
    shown = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "right entry first:" in shown.stdout and "out of scope declined:" in shown.stdout
    figures = json.loads(
        subprocess.run([*command, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120).stdout
    )
    assert figures["in_scope"] == 1 and figures["right_first"] == 1.0 and figures["out_of_scope_declined"] == 1.0
    cases.write_text("How can I pay my bill?,billing-no-such\n")
    refused = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "held-out.csv:1:" in refused.stderr
