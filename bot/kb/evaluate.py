"""How well the matcher answers a set of labelled questions: ``python -m bot.kb eval FILE``.

FILE is CSV with two columns, ``query`` and ``expected_id`` (a header row with those
names is optional); ``none`` as the expected id means the knowledge base does not cover the
question and the bot should not answer it. What a support team needs to know:

* **right first**: of the covered questions, how often the right entry is the best match
  (whatever the bot then does with it);
* **coverage**: of the covered questions, how many get a direct answer;
* **accuracy of answers**: of those direct answers, how many are right (a wrong answer
  costs more than a "did you mean");
* **out of scope declined**: of the uncovered ones, how many get no direct answer;
* the worst confusions, so an editor knows which phrasings to add.

Measure on questions you never tuned on; tune on a different set.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bot.kb.matcher import ANSWER, Matcher

OUT_OF_SCOPE = "none"


class EvalFileError(ValueError):
    """The evaluation file cannot be read; the message says where and why."""


@dataclass(frozen=True)
class Case:
    query: str
    expected: str | None  # None: the knowledge base does not cover it


def read_cases(path: Path, known_ids: Iterable[str] | None = None) -> list[Case]:
    """Rows of ``query, expected_id``; an id the knowledge base lacks is an error, not a miss."""
    known = set(known_ids) if known_ids is not None else None
    cases: list[Case] = []
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EvalFileError(f"{path}: cannot read it: {exc}") from None
    for number, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if number == 1 and [c.strip().lower() for c in row[:2]] == ["query", "expected_id"]:
            continue
        if len(row) != 2:
            raise EvalFileError(f"{path}:{number}: expected 2 columns (query, expected_id), got {len(row)}")
        query, expected = row[0].strip(), row[1].strip()
        if not query or not expected:
            raise EvalFileError(f"{path}:{number}: both the query and the expected id are needed")
        if expected.lower() == OUT_OF_SCOPE:
            cases.append(Case(query, None))
            continue
        if known is not None and expected not in known:
            raise EvalFileError(f"{path}:{number}: no entry with id {expected!r} in the knowledge base")
        cases.append(Case(query, expected))
    if not cases:
        raise EvalFileError(f"{path}: no questions in it")
    return cases


@dataclass
class Report:
    in_scope: int = 0
    out_of_scope: int = 0
    right_first: int = 0
    answered: int = 0
    answered_right: int = 0
    declined: int = 0  # out of scope, not answered directly
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)

    @staticmethod
    def share(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    def as_json(self) -> dict[str, object]:
        return {
            "in_scope": self.in_scope,
            "out_of_scope": self.out_of_scope,
            "right_first": self.share(self.right_first, self.in_scope),
            "coverage": self.share(self.answered, self.in_scope),
            "accuracy_of_answers": self.share(self.answered_right, self.answered),
            "out_of_scope_declined": self.share(self.declined, self.out_of_scope),
            "worst_confusions": [
                {"expected": expected, "got": got, "count": count, "example": self.examples[(expected, got)]}
                for (expected, got), count in self.confusions.most_common(10)
            ],
        }


def evaluate(matcher: Matcher, cases: Iterable[Case]) -> Report:
    report = Report()
    for case in cases:
        match = matcher.match(case.query)
        answered = match.decision == ANSWER
        if case.expected is None:
            report.out_of_scope += 1
            if answered:
                key = (OUT_OF_SCOPE, str(match.id))
                report.confusions[key] += 1
                report.examples.setdefault(key, case.query)
            else:
                report.declined += 1
            continue
        report.in_scope += 1
        top = match.candidates[0].id if match.candidates else match.id  # first even when not answered
        report.right_first += top == case.expected
        if answered:
            report.answered += 1
            report.answered_right += match.id == case.expected
        if match.id != case.expected:
            key = (case.expected, str(match.id or OUT_OF_SCOPE))
            report.confusions[key] += 1
            report.examples.setdefault(key, case.query)
    return report


def format_report(report: Report) -> str:
    def line(label: str, part: int, whole: int) -> str:
        value = Report.share(part, whole)
        shown = "n/a" if value is None else f"{value:.1%}"
        return f"{label:<26}{shown:>7}  ({part}/{whole})"

    lines = [
        f"questions: {report.in_scope} covered by the knowledge base, {report.out_of_scope} not",
        line("right entry first:", report.right_first, report.in_scope),
        line("answered directly:", report.answered, report.in_scope),
        line("right when answered:", report.answered_right, report.answered),
        line("out of scope declined:", report.declined, report.out_of_scope),
    ]
    if report.confusions:
        lines.append("worst confusions (expected -> got, count, example):")
        for (expected, got), count in report.confusions.most_common(10):
            lines.append(f"  {expected} -> {got}  x{count}  e.g. {report.examples[(expected, got)]!r}")
    return "\n".join(lines)
