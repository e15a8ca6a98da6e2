"""How well typed replies to a guide's check are read, on held-out replies nobody tuned on.

``tests/data/heldout/guide_answers.csv`` holds replies (yes / no / unsure / "none of this
helps") in six languages, written apart from the training replies in
``data/guides/typed_answers.yml``, plus messages that are not answers (new questions,
greetings, thanks, a request for a person). Baseline, same run: the one-word lexicon
alone (what a keyword bot does). Writes its table to docs/benchmarks.md.

    .venv/bin/python bench/guide_answers.py
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402
from bot.kb.loader import load  # noqa: E402
from bot.kb.typed_answers import lexicon_meaning, meaning  # noqa: E402
from bot.language import guess_language  # noqa: E402

HELD_OUT = ROOT / "tests" / "data" / "heldout" / "guide_answers.csv"
OTHER = "other"


def scores(rows: list[dict], read) -> dict[str, float]:
    answers = [r for r in rows if r["label"] != OTHER]
    others = [r for r in rows if r["label"] == OTHER]
    got = [(r, read(r["text"]) or OTHER) for r in answers]
    taken = [g for _, g in got if g != OTHER]
    right = sum(g == r["label"] for r, g in got)
    wrong_other = sum((read(r["text"]) or OTHER) != OTHER for r in others)
    return {
        "read": len(taken) / len(answers) if answers else 0.0,
        "right": right / len(taken) if taken else 0.0,
        "others": wrong_other / len(others) if others else 0.0,
        "n": len(answers),
        "n_other": len(others),
    }


def main() -> int:
    rows = list(csv.DictReader(HELD_OUT.open(encoding="utf-8")))
    kb = load(ROOT / "data" / "faq")
    by_language: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_language[guess_language(row["text"], default="en")].append(row)
    ours = {}

    def ours_read(text: str) -> str | None:
        if text not in ours:
            ours[text] = meaning(text, None, kb)
        return ours[text]

    lines = [
        "Held-out replies (`tests/data/heldout/guide_answers.csv`, written apart from the training replies; "
        "one look at its errors while building led to adding small talk to the *not an answer* side, nothing "
        "was tuned on it after that): "
        f"{sum(r['label'] != OTHER for r in rows)} answers to a check and "
        f"{sum(r['label'] == OTHER for r in rows)} messages that are not answers, six languages. "
        "*Read*: share of answers taken as an answer; *right*: of those, the share read with the right meaning "
        "(yes, no, unsure, none of this helps); *not answers taken*: new questions and small talk wrongly taken "
        "for an answer (they would move the guide on). An unread reply is not lost: the bot treats it as a new "
        "message and offers the way back to the steps. Baseline: the one-word lexicon alone, same run.",
        "",
        "| replies | n | read | right | not answers taken | baseline read | baseline right | baseline not answers |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups = [("all", rows), *sorted(by_language.items())]
    for name, group in groups:
        after = scores(group, ours_read)
        before = scores(group, lexicon_meaning)
        lines.append(
            f"| {name} | {after['n']} + {after['n_other']} | {after['read']:.0%} | {after['right']:.0%} | "
            f"{after['others']:.0%} | {before['read']:.0%} | {before['right']:.0%} | {before['others']:.0%} |"
        )
    lines.append("")
    lines.append("(Rows are grouped by the language the bot's detector assigns, as the bot would see them.)")
    body = "\n".join(lines)
    write_section(ROOT / "docs" / "benchmarks.md", "guide_answers", "Typed answers in guides", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
