"""What a match is: the decision, the entry, the calibrated score and the runner-up candidates.

Shared by the encoder matcher (``bot.kb.matcher``) and the rapidfuzz baseline
(``bot.kb.fuzzy``), so both answer in the same shape and the ``python -m bot.kb match``
contract does not depend on how the score was found.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ANSWER = "answer"
SUGGEST = "suggest"
NONE = "none"


@dataclass(frozen=True)
class MatchSettings:
    """Cut-offs on the matcher's 0-100 probability scale; ``bot.settings`` reads overrides.

    Chosen by ``bench/calibrate_matcher.py`` on the tuning questions: the most questions
    answered directly while at least 95% of answers are right and at most 7% of
    out-of-scope questions are answered. A wrong answer costs more than a question back,
    so the bot answers only when the best entry is also ``margin`` points ahead of the next
    (0 by default: the score already falls when another entry is close).
    """

    answer_cutoff: float = 66.0
    suggest_cutoff: float = 26.0
    margin: float = 0.0
    max_suggestions: int = 3
    # A one-word message ("refund", "wifi") fits several entries: it gets choices, unless
    # it is an editor's phrasing as written.
    min_words_to_answer: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.suggest_cutoff <= self.answer_cutoff <= 100:
            raise ValueError(
                f"need 0 <= suggest cut-off ({self.suggest_cutoff}) <= answer cut-off ({self.answer_cutoff}) <= 100"
            )


@dataclass(frozen=True)
class Candidate:
    id: str
    score: float
    language: str


@dataclass(frozen=True)
class Match:
    query: str
    decision: str
    id: str | None
    score: float
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)

    @property
    def language(self) -> str | None:
        """The language of the phrasing that matched best: the one to answer in."""
        return self.candidates[0].language if self.candidates else None

    @property
    def suggestions(self) -> tuple[Candidate, ...]:
        return self.candidates if self.decision == SUGGEST else ()

    def as_json(self) -> dict:
        """The stable ``python -m bot.kb match`` output; other tools parse it."""
        return {
            "query": self.query,
            "decision": self.decision,
            "id": self.id,
            "score": self.score,
            "candidates": [{"id": c.id, "score": c.score} for c in self.candidates],
        }
