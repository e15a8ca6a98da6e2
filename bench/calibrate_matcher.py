"""Fit the matcher's score model and cut-offs on the tuning questions, and print them.

Reads ``tests/data/tuning/kb_queries.csv`` and the paraphrases and nonsense of
``tests/data/paraphrases.yml`` (never ``tests/data/heldout``: that set only measures).
Steps, each printed so a reviewer can follow the choice:

1. weights of nearest phrasing, centroid, answer passage and fuzzy score: the grid point with the most
   questions whose right entry comes first;
2. ``coefficients`` and ``bias``: logistic regression of "this candidate is the right
   entry" on its evidence (:data:`bot.kb.matcher.FEATURES`), over the three best
   candidates of every question (out-of-scope questions give only negatives), so the
   score reads as a probability;
3. cut-offs: the answer cut-off and margin that answer the most in-scope questions while
   at least 95% of answers are right and at most 6% of out-of-scope questions are
   answered, and none of the nonsense of ``paraphrases.yml`` (``make test`` checks that it is
   never answered); the suggest cut-off that keeps "did you mean" for out-of-scope questions
   under 20%.

Paste the result into ``ScoreModel`` and ``MatchSettings`` defaults.

With ``--folds K`` it also prints what the in-sample figures cannot say: the whole fit
(steps 1 to 3) repeated on K-1 folds of the tuning questions and measured on the fold left
out, per language group. About a thousand questions are still few; these are the figures
to compare two feature sets or cut-off rules by.

    .venv/bin/python bench/calibrate_matcher.py [--folds 5]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.kb import load  # noqa: E402
from bot.kb.evaluate import read_cases  # noqa: E402
from bot.kb.matcher import (  # noqa: E402
    EXACT,
    FEATURES,
    Matcher,
    QueryWords,
    ScoreModel,
    answers_directly,
    candidate_features,
)
from bot.kb.normalize import content_words  # noqa: E402
from bot.kb.result import MatchSettings  # noqa: E402
from bot.language import guess_language  # noqa: E402

TUNING = ROOT / "tests" / "data" / "tuning" / "kb_queries.csv"
PARAPHRASES = ROOT / "tests" / "data" / "paraphrases.yml"
# A wrong answer costs more than a question back: at least this share of answers right,
# at most this share of out-of-scope questions answered (the targets: 95%, 10%).
ACCURACY = 0.95
OOS_ANSWERED = 0.06
WEIGHT_GRID = (
    (0, 0.15, 0.3),
    (0.3, 0.5, 0.7, 1.0),
    (0.3, 0.5, 0.7, 1.0),
    (0, 0.03, 0.05, 0.08, 0.12),
)


def tuning_cases(known: set[str]) -> list[tuple[str, str | None]]:
    cases = [(c.query, c.expected) for c in read_cases(TUNING, known)] if TUNING.exists() else []
    data = yaml.safe_load(PARAPHRASES.read_text(encoding="utf-8"))
    cases += [(c["text"], c["id"]) for c in data.get("paraphrases", []) if c["id"] in known]
    cases += [(c if isinstance(c, str) else c["text"], None) for c in data.get("nonsense", [])]
    return cases


def nonsense_texts() -> set[str]:
    data = yaml.safe_load(PARAPHRASES.read_text(encoding="utf-8"))
    return {c if isinstance(c, str) else c["text"] for c in data.get("nonsense", [])}


@dataclass(frozen=True)
class Case:
    """One tuning question with the matcher's evidence, computed once: every fit and every
    fold reuses it, as :meth:`Matcher.match` would compute it."""

    query: str
    expected: int | None  # entry number; None: out of scope
    evidence: tuple
    words: QueryWords
    exact: int | None
    length: int
    nonsense: bool

    @property
    def english(self) -> bool:
        return guess_language(self.query) == "en"


def collect(matcher: Matcher, cases: list[tuple[str, str | None]]) -> list[Case]:
    """The evidence of every case, from one batched embedding."""
    index = {e.id: n for n, e in enumerate(matcher.kb.entries)}
    nonsense = nonsense_texts()
    vectors = matcher.encoder.embed([q for q, _ in cases])
    out = []
    for (query, expected), vector in zip(cases, vectors, strict=True):
        evidence = matcher.evidence(query, vector)
        processed = content_words(query)
        out.append(
            Case(
                query=query,
                expected=index[expected] if expected else None,
                evidence=evidence,
                words=matcher.query_words(query, list(evidence[3])),
                exact=matcher._exact.get(processed),
                length=len(processed.split()),
                nonsense=query in nonsense,
            )
        )
    return out


def ranked_features(weights: ScoreModel, case: Case) -> tuple[list[int], np.ndarray]:
    """The candidates by ranking score and their rows of FEATURES."""
    nearest, centroid, answer, fuzzy = case.evidence
    scores = {e: weights.combine(nearest[e], centroid[e], answer[e], f) for e, f in fuzzy.items()}
    ranked = sorted(scores, key=scores.get, reverse=True)
    return ranked, candidate_features(ranked, nearest, centroid, answer, fuzzy, scores, case.words)


def fit_weights(cases: list[Case]) -> ScoreModel:
    """Step 1: the weight grid point with the most right-first questions."""
    best = None
    for point in itertools.product(*WEIGHT_GRID):
        weights = ScoreModel(*point)
        right = sum(ranked_features(weights, c)[0][0] == c.expected for c in cases if c.expected is not None)
        if best is None or right > best[0]:
            best = (right, weights)
    return best[1]


def fit_probability(weights: ScoreModel, cases: list[Case]) -> ScoreModel:
    """Step 2: the logistic regression over the three best candidates of every case."""
    from sklearn.linear_model import LogisticRegression

    xs, ys, first_covered = [], [], []
    for case in cases:
        ranked, features = ranked_features(weights, case)
        first_covered.append(features[0][FEATURES.index("covered")])
        for entry, row in zip(ranked[:3], features[:3], strict=False):
            xs.append(row)
            ys.append(int(entry == case.expected))
    fit = LogisticRegression(C=100.0, max_iter=10_000).fit(np.array(xs), np.array(ys))
    return replace(
        weights,
        coefficients=tuple(round(float(c), 3) for c in fit.coef_[0]),
        bias=round(float(fit.intercept_[0]), 3),
        unknown_covered=round(float(np.mean(first_covered)), 3),
    )


@dataclass(frozen=True)
class Top:
    """What :meth:`Matcher.match` decides from: its best entry, its score, the runner-up's."""

    entry: int
    score: float
    second: float


def top_of(model: ScoreModel, case: Case) -> Top:
    """The matcher's ranking by probability, with the exact-phrasing rule."""
    ranked, features = ranked_features(model, case)
    probability = dict(zip(ranked, np.round(100 * model.probability(features), 1).tolist(), strict=True))
    if case.exact is not None:
        probability[case.exact] = 100 * EXACT
    order = sorted(probability, key=lambda e: -probability[e])
    return Top(order[0], probability[order[0]], probability[order[1]] if len(order) > 1 else 0.0)


def answers(case: Case, top: Top, settings: MatchSettings) -> bool:
    """Whether :meth:`Matcher.match` answers directly (its own rule, on these numbers)."""
    return answers_directly(top.score, top.second, case.length, case.exact is not None, settings)


def choose_settings(model: ScoreModel, cases: list[Case]) -> tuple[MatchSettings, float, float] | None:
    """Step 3: the cut-offs, with the share of answers right and of out-of-scope answered."""
    tops = [top_of(model, c) for c in cases]
    oos = [t for c, t in zip(cases, tops, strict=True) if c.expected is None]
    chosen = None
    for cutoff, margin in itertools.product(range(30, 100), range(0, 41, 2)):
        settings = MatchSettings(answer_cutoff=cutoff, suggest_cutoff=0, margin=margin)
        answered = [(c, t) for c, t in zip(cases, tops, strict=True) if answers(c, t, settings)]
        in_answered = [(c, t) for c, t in answered if c.expected is not None]
        if not in_answered or any(c.nonsense for c, _ in answered):
            continue
        accuracy = sum(t.entry == c.expected for c, t in in_answered) / len(in_answered)
        oos_answered = (len(answered) - len(in_answered)) / max(1, len(oos))
        if accuracy >= ACCURACY and oos_answered <= OOS_ANSWERED and (chosen is None or len(in_answered) > chosen[0]):
            chosen = (len(in_answered), cutoff, margin, accuracy, oos_answered)
    if chosen is None:
        return None
    _, cutoff, margin, accuracy, oos_answered = chosen
    suggest = next(
        (s for s in range(5, cutoff + 1) if sum(1 for t in oos if t.score >= s) / max(1, len(oos)) <= 0.2), cutoff
    )
    return MatchSettings(answer_cutoff=cutoff, suggest_cutoff=suggest, margin=margin), accuracy, oos_answered


def figures(rows: list[tuple[Case, Top, bool]]) -> str:
    """The issue's four figures for (case, top, answered) rows."""
    in_scope = [(c, t, a) for c, t, a in rows if c.expected is not None]
    oos = [a for c, _, a in rows if c.expected is None]
    answered = [(c, t) for c, t, a in in_scope if a]
    right_first = sum(t.entry == c.expected for c, t, _ in in_scope) / max(1, len(in_scope))
    right = sum(t.entry == c.expected for c, t in answered) / max(1, len(answered))
    coverage = len(answered) / max(1, len(in_scope))
    return (
        f"n={len(in_scope)}/{len(oos)} right first {right_first:.1%}  answered {coverage:.1%}"
        f"  right when answered {right:.1%}  out of scope declined {1 - sum(oos) / max(1, len(oos)):.1%}"
    )


def cross_validate(cases: list[Case], folds: int, seed: int = 0) -> list[tuple[Case, Top, bool]]:
    """Every case decided by a model and cut-offs fitted without its fold (steps 1 to 3)."""
    fold = np.random.default_rng(seed).permutation(len(cases)) % folds
    out = []
    for held in range(folds):
        train = [c for c, f in zip(cases, fold, strict=True) if f != held]
        model = fit_probability(fit_weights(train), train)
        chosen = choose_settings(model, train)
        settings = chosen[0] if chosen else MatchSettings(answer_cutoff=100, suggest_cutoff=100)
        for case in (c for c, f in zip(cases, fold, strict=True) if f == held):
            top = top_of(model, case)
            out.append((case, top, answers(case, top, settings)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=0, help="also print k-fold cross-validated figures")
    args = parser.parse_args()
    kb = load(ROOT / "data" / "faq")
    matcher = Matcher(kb)
    cases = collect(matcher, tuning_cases({e.id for e in kb.entries}))
    in_scope = [c for c in cases if c.expected is not None]
    print(f"{len(cases)} tuning questions: {len(in_scope)} in scope, {len(cases) - len(in_scope)} out of scope")
    weights = fit_weights(cases)
    right = sum(ranked_features(weights, c)[0][0] == c.expected for c in in_scope)
    print(f"1. weights {weights}: right first {right}/{len(in_scope)} = {right / len(in_scope):.1%}")
    model = fit_probability(weights, cases)
    print(f"2. {model} (features {FEATURES})")
    chosen = choose_settings(model, cases)
    if chosen is None:
        print(f"3. no cut-off meets {ACCURACY:.0%} right with <= {OOS_ANSWERED:.0%} out-of-scope answered")
        return 1
    settings, accuracy, oos_answered = chosen
    count = sum(answers(c, top_of(model, c), settings) for c in in_scope)
    print(f"3. {settings}: answers {count}/{len(in_scope)} = {count / len(in_scope):.1%} in scope, "
          f"{accuracy:.1%} of them right; out of scope answered {oos_answered:.1%}")  # fmt: skip
    if args.folds:
        rows = cross_validate(cases, args.folds)
        print(f"{args.folds}-fold cross-validation (fit on the other folds, measured on each):")
        for name, keep in (("all", lambda c: True), ("en", lambda c: c.english), ("other", lambda c: not c.english)):
            print(f"   {name:<6} {figures([r for r in rows if keep(r[0])])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
