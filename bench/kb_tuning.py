"""Matcher figures on tuning data only: the tuning questions and k-fold cross-validation over
the KB's own phrasings (never ``tests/data/heldout``: that set only measures).

* **tuning**: ``tests/data/tuning/kb_queries.csv`` plus the paraphrases and nonsense of
  ``tests/data/paraphrases.yml``, per language group (English, other);
* **cv**: each entry's alternatives split into ``--folds`` folds; each fold is left out of
  the KB in turn and its phrasings are matched against the rest (the question stays, so
  every language keeps a phrasing). Only right first and answered/right-when-answered
  are meaningful here (there are no out-of-scope phrasings).

    .venv/bin/python bench/kb_tuning.py [--folds 5] [--no-cv] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.calibrate_matcher import tuning_cases  # noqa: E402
from bot.kb import load  # noqa: E402
from bot.kb.matcher import ANSWER, Matcher  # noqa: E402
from bot.kb.model import KnowledgeBase  # noqa: E402
from bot.language import guess_language  # noqa: E402
from bot.settings import load_settings  # noqa: E402


def figures(rows: list[tuple[str | None, object]]) -> dict[str, float]:
    """rows: (expected id or None, Match)."""
    in_scope = [(e, m) for e, m in rows if e]
    oos = [m for e, m in rows if not e]
    answered = [(e, m) for e, m in in_scope if m.decision == ANSWER]
    return {
        "n": len(in_scope),
        "n_oos": len(oos),
        "right_first": sum(bool(m.candidates) and m.candidates[0].id == e for e, m in in_scope) / max(1, len(in_scope)),
        "answered": len(answered) / max(1, len(in_scope)),
        "right_when_answered": sum(m.id == e for e, m in answered) / max(1, len(answered)),
        "oos_declined": sum(m.decision != ANSWER for m in oos) / max(1, len(oos)),
    }


def by_group(cases: list[tuple[str, str | None]], matches) -> dict[str, dict]:
    groups = {"all": lambda q: True, "en": lambda q: guess_language(q) == "en",
              "other": lambda q: guess_language(q) != "en"}  # fmt: skip
    return {
        name: figures([(e, m) for (q, e), m in zip(cases, matches, strict=True) if keep(q)])
        for name, keep in groups.items()
    }


def cross_validation(kb: KnowledgeBase, folds: int, settings) -> list[tuple[str, str, object]]:
    """(query, expected id, Match) for every alternative, each matched with its fold left out."""
    out = []
    previous = None
    for fold in range(folds):
        entries, held = [], []
        for entry in kb.entries:
            kept = {}
            for language, texts in entry.alternatives.items():
                kept[language] = tuple(t for n, t in enumerate(texts) if n % folds != fold)
                held.extend((t, entry.id) for n, t in enumerate(texts) if n % folds == fold)
            entries.append(replace(entry, alternatives=kept))
        matcher = Matcher(KnowledgeBase.of(entries), settings, previous=previous)
        previous = matcher
        matches = matcher.match_many([q for q, _ in held])
        out.extend((q, e, m) for (q, e), m in zip(held, matches, strict=True))
    return out


def line(name: str, f: dict) -> str:
    return (
        f"{name:<10} n={f['n']:>4}/{f['n_oos']:<3} right first {f['right_first']:.1%}  answered {f['answered']:.1%}"
        f"  right when answered {f['right_when_answered']:.1%}  oos declined {f['oos_declined']:.1%}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--no-cv", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--misses", action="store_true", help="print the tuning questions answered wrongly")
    args = parser.parse_args()
    kb = load(ROOT / "data" / "faq")
    settings = load_settings().match  # KB_ANSWER_CUTOFF etc. from the environment, as `bot.kb match`
    matcher = Matcher(kb, settings)
    cases = tuning_cases({e.id for e in kb.entries})
    matches = matcher.match_many([q for q, _ in cases])
    result = {"tuning": by_group(cases, matches)}
    if args.misses:
        for (q, e), m in zip(cases, matches, strict=True):
            top = m.candidates[0].id if m.candidates else None
            if (e and top != e) or (m.decision == ANSWER and m.id != e):
                print(f"  {e} -> {m.decision} {top} {m.score}: {q}")
    if not args.no_cv:
        cv = cross_validation(kb, args.folds, settings)
        result["cv"] = by_group([(q, e) for q, e, _ in cv], [m for _, _, m in cv])
    if args.json:
        print(json.dumps(result))
    else:
        for part, groups in result.items():
            for name, f in groups.items():
                print(line(f"{part}:{name}", f))
    return 0


if __name__ == "__main__":
    sys.exit(main())
