"""Fit the matcher's score model and cut-offs on the tuning questions, and print them.

Reads ``tests/data/tuning/kb_queries.csv`` and the paraphrases and nonsense of
``tests/data/paraphrases.yml`` (never ``tests/data/heldout``: that set only measures).
Steps, each printed so a reviewer can follow the choice:

1. weights of nearest phrasing, centroid, answer passage and fuzzy score: the grid point with the most
   questions whose right entry comes first;
2. ``coefficients`` and ``bias``: logistic regression of "this candidate is the right
   entry" on its evidence and its lead over the best other candidate, over the three
   best candidates of every question (out-of-scope questions give only negatives), so
   the score reads as a probability;
3. cut-offs: the answer cut-off and margin that answer the most in-scope questions while
   at least 95% of answers are right and at most 7% of out-of-scope questions are
   answered, and none of the nonsense of ``paraphrases.yml`` (``make test`` checks that it is
   never answered); the suggest cut-off that keeps "did you mean" for out-of-scope questions
   under 20%.

Paste the result into ``ScoreModel`` and ``MatchSettings`` defaults.

    .venv/bin/python bench/calibrate_matcher.py
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.kb import load  # noqa: E402
from bot.kb.evaluate import read_cases  # noqa: E402
from bot.kb.matcher import FEATURES, Matcher, ScoreModel, candidate_features  # noqa: E402
from bot.kb.result import MatchSettings  # noqa: E402

TUNING = ROOT / "tests" / "data" / "tuning" / "kb_queries.csv"
PARAPHRASES = ROOT / "tests" / "data" / "paraphrases.yml"
# A wrong answer costs more than a question back: at least this share of answers right,
# at most this share of out-of-scope questions answered (the targets: 95%, 10%).
ACCURACY = 0.95
OOS_ANSWERED = 0.07


def tuning_cases(known: set[str]) -> list[tuple[str, str | None]]:
    cases = [(c.query, c.expected) for c in read_cases(TUNING, known)] if TUNING.exists() else []
    data = yaml.safe_load(PARAPHRASES.read_text(encoding="utf-8"))
    cases += [(c["text"], c["id"]) for c in data.get("paraphrases", []) if c["id"] in known]
    cases += [(c if isinstance(c, str) else c["text"], None) for c in data.get("nonsense", [])]
    return cases


def main() -> int:
    kb = load(ROOT / "data" / "faq")
    matcher = Matcher(kb)
    known = {e.id for e in kb.entries}
    index = {e.id: n for n, e in enumerate(kb.entries)}
    cases = tuning_cases(known)
    in_scope = [c for c in cases if c[1]]
    print(f"{len(cases)} tuning questions: {len(in_scope)} in scope, {len(cases) - len(in_scope)} out of scope")
    vectors = matcher.encoder.embed([q for q, _ in cases])
    evidence = [matcher.evidence(q, v) for (q, _), v in zip(cases, vectors, strict=True)]

    def combined(weights: ScoreModel, ev) -> dict[int, float]:
        nearest, centroid, answer, fuzzy = ev
        return {e: weights.combine(nearest[e], centroid[e], answer[e], f) for e, f in fuzzy.items()}

    best = None
    grid = itertools.product((0, 0.15, 0.3), (0.3, 0.5, 0.7, 1.0), (0.3, 0.5, 0.7, 1.0), (0, 0.03, 0.05, 0.08, 0.12))
    for nearest_w, centroid_w, answer_w, fuzzy_w in grid:
        weights = ScoreModel(nearest=nearest_w, centroid=centroid_w, answer=answer_w, fuzzy=fuzzy_w)
        right = 0
        for (_, expected), ev in zip(cases, evidence, strict=True):
            if expected:
                scores = combined(weights, ev)
                right += max(scores, key=scores.get) == index[expected]
        if best is None or right > best[0]:
            best = (right, weights)
    right, weights = best
    print(f"1. weights {weights}: right first {right}/{len(in_scope)} = {right / len(in_scope):.1%}")

    xs, ys = [], []
    ranked_all = []
    for (_, expected), ev in zip(cases, evidence, strict=True):
        scores = combined(weights, ev)
        ranked = sorted(scores, key=scores.get, reverse=True)
        features = candidate_features(ranked, *ev[:3], ev[3], scores)
        ranked_all.append((ranked, features))
        for entry, row in zip(ranked[:3], features[:3], strict=False):
            xs.append(row)
            ys.append(int(expected is not None and entry == index[expected]))
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(C=100.0, max_iter=10_000).fit(np.array(xs), np.array(ys))
    model = replace(
        weights,
        coefficients=tuple(round(float(c), 3) for c in fit.coef_[0]),
        bias=round(float(fit.intercept_[0]), 3),
    )
    print(f"2. {model} (features {FEATURES})")

    tops = []
    for (expected, _), (ranked, features) in zip(((e, q) for q, e in cases), ranked_all, strict=True):
        probabilities = np.round(100 * model.probability(features[:2]), 1)  # as the matcher reports them
        second = probabilities[1] if len(ranked) > 1 else 0.0
        tops.append((expected, ranked[0] == index.get(expected, -1), probabilities[0], second))
    oos = [t for t in tops if t[0] is None]
    data = yaml.safe_load(PARAPHRASES.read_text(encoding="utf-8"))
    nonsense = {c if isinstance(c, str) else c["text"] for c in data.get("nonsense", [])}
    nonsense_tops = [t for (query, _), t in zip(cases, tops, strict=True) if query in nonsense]
    chosen = None
    for cutoff, margin in itertools.product(range(30, 100), range(0, 41, 2)):
        answered = [t for t in tops if t[2] >= cutoff and t[2] - t[3] >= margin]
        in_answered = [t for t in answered if t[0] is not None]
        if not in_answered or any(t[2] >= cutoff and t[2] - t[3] >= margin for t in nonsense_tops):
            continue
        accuracy = sum(t[1] for t in in_answered) / len(in_answered)
        oos_answered = sum(1 for t in answered if t[0] is None) / max(1, len(oos))
        if accuracy >= ACCURACY and oos_answered <= OOS_ANSWERED and (chosen is None or len(in_answered) > chosen[0]):
            chosen = (len(in_answered), cutoff, margin, accuracy, oos_answered)
    if chosen is None:
        print(f"3. no cut-off meets {ACCURACY:.0%} right with <= {OOS_ANSWERED:.0%} out-of-scope answered")
        return 1
    count, cutoff, margin, accuracy, oos_answered = chosen
    suggest = next(
        (s for s in range(5, cutoff + 1) if sum(1 for t in oos if t[2] >= s) / max(1, len(oos)) <= 0.2), cutoff
    )
    settings = MatchSettings(answer_cutoff=cutoff, suggest_cutoff=suggest, margin=margin)
    print(f"3. {settings}: answers {count}/{len(in_scope)} = {count / len(in_scope):.1%} in scope, "
          f"{accuracy:.1%} of them right; out of scope answered {oos_answered:.1%}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
