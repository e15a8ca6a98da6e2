"""Find the knowledge-base entry a customer's message is about: meaning first, spelling second.

The NLU model only decides that a message is a question; which entry answers it is
decided here, against every phrasing editors wrote, so an editor's new alternative works
the moment the file is saved, without retraining.

Evidence for each entry, from one embedding of the message:

* **nearest**: cosine of the message to the entry's closest phrasing (a few-shot
  nearest-neighbour classifier: one good phrasing is enough);
* **centroid**: cosine to the mean of all its phrasings (a prototype classifier: robust
  when no single phrasing is close but the entry's topic is);
* **answer**: cosine to the entry's question and answer embedded as a *passage* (e5 was
  trained to find the passage that answers a query: this catches questions worded
  nothing like any phrasing but answered by the text);
* **fuzzy**: rapidfuzz's character and rare-word score (``bot.kb.fuzzy``), computed only for
  the few entries the vectors or the word index put forward, so a misspelt product word or
  an almost verbatim phrasing still counts.

A logistic function of their weighted sum (:class:`ScoreModel`, fitted by
``bench/calibrate_matcher.py`` on ``tests/data/tuning``) turns it into the probability that
the entry is the right one, on a 0-100 scale. Cut-offs on that probability decide: answer
(high and clearly ahead of the runner-up), "did you mean" (plausible), or "I didn't
understand". A prototype classifier needs no training, so a reload after an edit embeds
only the changed phrasings (the encoder caches vectors by text hash).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from bot.kb.fuzzy import WordIndex, char_score
from bot.kb.model import DEFAULT_LANGUAGE, KnowledgeBase, pick
from bot.kb.normalize import content_words
from bot.kb.result import ANSWER, NONE, SUGGEST, Candidate, Match, MatchSettings
from bot.language import guess_language

__all__ = ["ANSWER", "NONE", "SUGGEST", "Candidate", "Match", "MatchSettings", "Matcher", "ScoreModel"]


@dataclass(frozen=True)
class ScoreModel:
    """How the evidence ranks entries and becomes a probability; refit with
    ``bench/calibrate_matcher.py`` on the tuning questions.

    The four weights rank entries (chosen for right-first). The probability that a
    candidate is the right entry is a logistic regression over its evidence and its lead
    over the best other candidate (``coefficients`` in the order of :data:`FEATURES`,
    then ``bias``), fitted on the three best candidates of every tuning question, with
    out-of-scope questions giving only negatives: a score of 90 means about 9 in 10 such
    answers are right, and two close candidates both score lower, which is what turns a
    vague message into "did you mean".
    """

    nearest: float = 0.15
    centroid: float = 0.5
    answer: float = 0.3
    fuzzy: float = 0.08
    coefficients: tuple[float, ...] = (3.16, 3.449, -3.838, 8.116, 23.522)
    bias: float = -6.674

    def combine(self, nearest, centroid, answer, fuzzy):
        """The ranking score (floats or arrays alike)."""
        return self.nearest * nearest + self.centroid * centroid + self.answer * answer + self.fuzzy * fuzzy

    def probability(self, features: np.ndarray) -> np.ndarray:
        """P(right entry) for rows of :data:`FEATURES`."""
        return 1.0 / (1.0 + np.exp(-(self.bias + features @ np.asarray(self.coefficients))))


FEATURES = ("nearest", "centroid", "answer", "fuzzy", "lead")


def candidate_features(
    ranked: Sequence[int],
    nearest: np.ndarray,
    centroid: np.ndarray,
    answer: np.ndarray,
    fuzzy: dict[int, float],
    combined: dict[int, float],
) -> np.ndarray:
    """One row of :data:`FEATURES` per entry of ``ranked`` (best first); ``lead`` is the
    entry's ranking score minus the best other candidate's (negative for all but the first)."""
    scores = [combined[e] for e in ranked]
    rows = []
    for position, entry in enumerate(ranked):
        others = scores[1:2] if position == 0 else scores[:1]
        lead = scores[position] - (others[0] if others else 0.0)
        rows.append([nearest[entry], centroid[entry], answer[entry], fuzzy.get(entry, 0.0), lead])
    return np.asarray(rows, dtype=np.float64)


SCORE_MODEL = ScoreModel()
EXACT = 1.0  # the probability given to a phrasing typed as an editor wrote it
SHORT_WORD_MATCH = 0.6  # fuzzy score of an entry whose phrasings use a one-word message's word


def passage_texts(entry) -> list[tuple[str, str]]:
    """What an entry says, as e5 reads a passage: its question and answer, once per language
    the editors wrote it in (a Georgian question is best compared with the Georgian answer)."""
    languages = list(entry.answer) or [DEFAULT_LANGUAGE]
    return [(language, f"{pick(entry.question, language)}\n{pick(entry.answer, language)}") for language in languages]


MIN_PHRASINGS_FOR_MEAN = 50


def language_means(vectors: np.ndarray, languages: Sequence[str], kind: bytes = b"") -> dict[str, np.ndarray]:
    """The mean vector of each language, over the KB's texts and a fixed reference set.

    A multilingual encoder puts every Latvian sentence a little closer to every other
    Latvian sentence than to its English twin: a Latvian question drifts to whichever entry
    has Latvian phrasings. Taking each language's mean away from its vectors (and from the
    query, by its detected language) leaves more of the meaning: on the tuning questions,
    right-first in other languages rose from 64% to 77%. The NLU examples in ``data/nlu``
    (small talk, out of scope, in every language) are averaged in, so the mean, and with it
    the calibrated scores, stay the same kind of thing in a two-entry knowledge base.
    """
    reference_vectors, reference_languages = reference_set(kind)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for block, codes in ((vectors, np.asarray(languages)), (reference_vectors, np.asarray(reference_languages))):
        for language in set(codes.tolist()):
            rows = np.flatnonzero(codes == language)
            sums[language] = sums.get(language, 0.0) + block[rows].sum(0, dtype=np.float64)
            counts[language] = counts.get(language, 0) + len(rows)
    return {
        language: (sums[language] / counts[language]).astype(np.float32)
        for language in sums
        if counts[language] >= MIN_PHRASINGS_FOR_MEAN
    }


# content_words of the current KB's phrasings, so a reload normalises only what changed
# (replaced by each build: it never holds more than one KB's texts).
_PROCESSED: dict[str, str] = {}

REFERENCE = Path(__file__).resolve().parents[2] / "data" / "nlu"


@lru_cache(maxsize=2)
def reference_set(kind: bytes = b"") -> tuple[np.ndarray, list[str]]:
    """The NLU examples with a recognisable language, embedded (cached) as ``kind``."""
    import yaml

    from bot.nlu.encoder import get_encoder

    texts, languages = [], []
    for path in sorted(REFERENCE.glob("*.yml")):
        for block in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu", []):
            for line in str(block.get("examples", "")).splitlines():
                text = line.strip().removeprefix("- ").strip()
                language = guess_language(text, default="")
                if text and language:
                    texts.append(text)
                    languages.append(language)
    if not texts:
        return np.empty((0, 384), np.float32), []
    return get_encoder().embed(texts, kind), languages


def center_languages(vectors: np.ndarray, languages: Sequence[str], means: dict[str, np.ndarray]) -> np.ndarray:
    """:func:`center` for rows labelled by language (one dict lookup per language, not per row)."""
    slot = {language: n for n, language in enumerate(dict.fromkeys(languages))}
    codes = np.fromiter((slot[language] for language in languages), dtype=np.int32, count=len(languages))
    by_slot = [means.get(language) for language in slot]
    return center(vectors, by_slot, codes)


def center(vectors: np.ndarray, means: Sequence[np.ndarray | None], codes: np.ndarray | None = None) -> np.ndarray:
    """Each row minus its mean (when given), scaled back to unit length; with ``codes``,
    row ``i``'s mean is ``means[codes[i]]``."""
    if not len(vectors):
        return vectors
    if codes is not None:
        table = np.stack([np.zeros(vectors.shape[1], np.float32) if m is None else m for m in means])
        shifted = np.asarray(vectors, dtype=np.float32) - table[codes]
        norms = np.sqrt(np.einsum("ij,ij->i", shifted, shifted))[:, None]
        shifted /= np.where(norms == 0, 1, norms)
        return shifted
    distinct: dict[int, int] = {}
    table = [np.zeros(vectors.shape[1], np.float32)]
    index = np.empty(len(means), dtype=np.int32)
    for row, mean in enumerate(means):
        if mean is None:
            index[row] = 0
            continue
        slot = distinct.get(id(mean))
        if slot is None:
            slot = distinct[id(mean)] = len(table)
            table.append(np.asarray(mean, np.float32))
        index[row] = slot
    shifted = np.asarray(vectors, dtype=np.float32) - np.stack(table)[index]
    norms = np.sqrt(np.einsum("ij,ij->i", shifted, shifted))[:, None]
    shifted /= np.where(norms == 0, 1, norms)
    return shifted


class Matcher:
    """Holds the phrasing vectors of one knowledge base; a query costs one embedding, one
    matrix-vector product over all phrasings, and rapidfuzz on a dozen candidates."""

    POOL = 50  # entries the centroid and answer put forward before the nearest phrasing is looked at
    PASSAGE_POOL = 400  # in a larger KB, entries the centroid puts forward before passages are compared
    VECTOR_CANDIDATES = 8
    WORD_CANDIDATES = 4
    RARE_WORD_IDF = 2.0  # a word in fewer than about one entry in seven
    RARE_WORD_ROWS = 200

    def __init__(
        self,
        kb: KnowledgeBase,
        settings: MatchSettings | None = None,
        encoder=None,
        model: ScoreModel = SCORE_MODEL,
    ) -> None:
        if encoder is None:
            from bot.nlu.encoder import get_encoder

            encoder = get_encoder()
        self.kb = kb
        self.settings = settings or MatchSettings()
        self.encoder = encoder
        self.model = model
        texts: list[str] = []
        self._processed: list[str] = []
        self._language: list[str] = []
        owner: list[int] = []
        global _PROCESSED
        processed_before, processed_now = _PROCESSED, {}
        for number, entry in enumerate(kb.entries):
            for language, text in entry.variants():
                texts.append(text)
                processed = processed_before.get(text)
                if processed is None:
                    processed = content_words(text)
                processed_now[text] = processed
                self._processed.append(processed)
                self._language.append(language)
                owner.append(number)
        self._owner = np.asarray(owner, dtype=np.int64)
        # Phrasings are stored entry by entry, so each entry's rows are one slice.
        self._starts = np.flatnonzero(np.r_[True, self._owner[1:] != self._owner[:-1]]) if owner else np.empty(0, int)
        from bot.nlu.encoder import PASSAGE

        empty = np.empty((0, encoder.dim), np.float32)
        raw = encoder.embed(texts) if texts else empty
        self._means = language_means(raw, self._language)
        self._vectors = center_languages(raw, self._language, self._means)
        passages = [(n, lang, text) for n, entry in enumerate(kb.entries) for lang, text in passage_texts(entry)]
        self._passage_starts = (
            np.flatnonzero(np.r_[True, np.diff([n for n, _, _ in passages]) != 0]) if passages else None
        )
        self._passage_ends = np.r_[self._passage_starts[1:], len(passages)] if passages else None
        raw = encoder.embed([text for _, _, text in passages], PASSAGE) if passages else empty
        passage_languages = [lang for _, lang, _ in passages]
        passage_means = language_means(raw, passage_languages, PASSAGE)
        self._passages = center_languages(raw, passage_languages, passage_means)
        counts = np.diff(np.r_[self._starts, len(owner)]) if owner else np.empty(0)
        centroids = (
            np.add.reduceat(self._vectors, self._starts) / counts[:, None] if owner else np.empty((0, encoder.dim))
        )
        norms = np.linalg.norm(centroids, axis=1, keepdims=True)
        self._centroids = (centroids / np.where(norms == 0, 1, norms)).astype(np.float32)
        _PROCESSED = processed_now
        self._words = WordIndex([p.split() for p in self._processed], [str(o) for o in owner])
        # An editor's own phrasing, typed as written (up to case, punctuation and filler
        # words), is answered whatever the vectors say.
        self._exact: dict[str, int] = {}
        for processed, entry in zip(self._processed, owner, strict=True):
            self._exact.setdefault(processed, entry) if processed else None
        self._rows_of: dict[int, range] = {
            int(self._owner[s]): range(int(s), int(e))
            for s, e in zip(self._starts, [*self._starts[1:], len(owner)], strict=True)
        }

    def __len__(self) -> int:
        return len(self._processed)

    def evidence(
        self, query: str, vector: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, float]]:
        """The vector scores (nearest phrasing, centroid, answer) and the fuzzy score (0-1)
        of the candidate entries. The centroid is computed for every entry; the answer
        passages for every entry, or in a KB of more than ``PASSAGE_POOL`` entries for the
        entries with the closest centroids; the two pick a pool of ``POOL`` entries, and the
        nearest phrasing is looked at only there (-1 elsewhere): in a 5,000-entry KB that
        saves products with 30,000 passages and 250,000 phrasings per message."""
        if vector is None:
            vector = self.encoder.embed_one(query)
        vector = self.centered(query, vector)
        centroid = self._centroids @ vector
        if len(centroid) > self.PASSAGE_POOL:
            # A large KB: passages only for the entries whose phrasings are anywhere near.
            answer = np.full(len(centroid), -1.0, dtype=np.float32)
            shortlist = np.argpartition(-centroid, self.PASSAGE_POOL)[: self.PASSAGE_POOL]
            answer[shortlist] = self._passage_scores(shortlist, vector)
        else:
            answer = np.maximum.reduceat(self._passages @ vector, self._passage_starts)
        coarse = self.model.centroid * centroid + self.model.answer * answer
        nearest = np.full(len(centroid), -1.0, dtype=np.float32)
        pool = np.argpartition(-coarse, min(self.POOL, len(coarse) - 1))[: self.POOL]
        for entry in pool.tolist():
            rows = self._rows_of[entry]
            nearest[entry] = float(np.max(self._vectors[rows.start : rows.stop] @ vector))
        dense = np.full(len(centroid), -np.inf)
        dense[pool] = coarse[pool] + self.model.nearest * nearest[pool]
        processed = content_words(query)
        candidates = set(
            np.argpartition(-dense, min(self.VECTOR_CANDIDATES, len(dense) - 1))[: self.VECTOR_CANDIDATES].tolist()
        )
        # Words are scored on the phrasings of the entries the vectors put forward, plus the
        # entries sharing the query's rarest word: a misspelt product name the vectors miss.
        rows = {row for entry in candidates for row in self._rows_of[entry]}
        words = processed.split() if processed else []
        rare = max(words, key=lambda w: self._words.idf.get(w, 0.0), default=None)
        if rare is not None and self._words.idf.get(rare, 0.0) >= self.RARE_WORD_IDF:
            rows.update(self._words.postings.get(rare, [])[: self.RARE_WORD_ROWS])
        word_scores = self._words.scores(words, only=rows) if words else {}
        by_words: dict[int, float] = {}
        for row, value in word_scores.items():
            entry = int(self._owner[row])
            by_words[entry] = max(by_words.get(entry, 0.0), value)
        candidates.update(sorted(by_words, key=by_words.get, reverse=True)[: self.WORD_CANDIDATES])
        fuzzy: dict[int, float] = {}
        for entry in candidates:
            if nearest[entry] == -1.0:  # put forward by its words only
                rows_of_entry = self._rows_of[entry]
                nearest[entry] = float(np.max(self._vectors[rows_of_entry.start : rows_of_entry.stop] @ vector))
            if answer[entry] == -1.0:
                answer[entry] = self._passage_scores(np.array([entry]), vector)[0]
            best = 0.0
            for row in self._rows_of[entry]:
                choice = self._processed[row]
                score = 0.5 * char_score(processed, choice) + 0.5 * word_scores.get(row, 0.0)
                best = max(best, score)
            fuzzy[entry] = best / 100.0
        return nearest, centroid, answer, fuzzy

    def _passage_scores(self, entries: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """The best passage cosine of each of ``entries``, from their rows only."""
        starts, ends = self._passage_starts[entries], self._passage_ends[entries]
        lengths = ends - starts
        offsets = np.r_[0, np.cumsum(lengths)[:-1]]
        rows = np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))
        return np.maximum.reduceat(self._passages[rows] @ vector, offsets)

    def centered(self, query: str, vector: np.ndarray) -> np.ndarray:
        """The query's vector without its language's mean (see :func:`language_means`)."""
        mean = self._means.get(guess_language(query, default="")) if self._means else None
        return center(vector.reshape(1, -1), [mean])[0]

    def _closest_language(self, entry: int, vector: np.ndarray, detected: str) -> str:
        """The language the query was asked in, if the entry has it; else that of the entry's
        phrasing nearest to the query."""
        rows = self._rows_of[entry]
        if detected and detected in self._language[rows.start : rows.stop]:
            return detected
        return self._language[rows.start + int(np.argmax(self._vectors[rows.start : rows.stop] @ vector))]

    def match(self, query: str, limit: int = 3, vector: np.ndarray | None = None) -> Match:
        """The decision for one customer message; ``vector`` is its embedding when the caller
        already has it (the NLU pipeline embeds each message once)."""
        settings = self.settings
        if not self._processed or not any(ch.isalnum() for ch in query):
            return Match(query=query, decision=NONE, id=None, score=0.0)
        if vector is None:
            vector = self.encoder.embed_one(query)
        nearest, centroid, answer, fuzzy = self.evidence(query, vector)
        centered = self.centered(query, vector)
        lang = guess_language(query, default="")
        combined = {e: float(self.model.combine(nearest[e], centroid[e], answer[e], f)) for e, f in fuzzy.items()}
        entries = sorted(combined, key=combined.get, reverse=True)
        features = candidate_features(entries, nearest, centroid, answer, fuzzy, combined)
        probability = dict(zip(entries, self.model.probability(features).tolist(), strict=True))
        exact = self._exact.get(content_words(query))
        if exact is not None:
            probability[exact] = EXACT
        ranked = sorted(probability, key=lambda e: (-probability[e], self.kb.entries[e].id))
        candidates = [
            Candidate(self.kb.entries[e].id, round(100 * probability[e], 1), self._closest_language(e, centered, lang))
            for e in ranked[: max(limit, settings.max_suggestions, 2)]
        ]
        top = candidates[0]
        runner_up = candidates[1].score if len(candidates) > 1 else 0.0
        words = len(content_words(query).split())
        clear = exact is not None or (
            top.score - runner_up >= settings.margin and words >= settings.min_words_to_answer
        )
        if top.score >= settings.answer_cutoff and clear:
            return Match(query, ANSWER, top.id, top.score, tuple(candidates[:limit]))
        if words < settings.min_words_to_answer and exact is None:
            # "wifi", "roaming": the entries that use the word, for the customer to pick.
            by_id = {self.kb.entries[e].id: e for e in ranked}
            using = [c for c in candidates if fuzzy.get(by_id[c.id], 0.0) >= SHORT_WORD_MATCH]
            if using:
                return Match(query, SUGGEST, using[0].id, using[0].score, tuple(using[: settings.max_suggestions]))
        if top.score >= settings.suggest_cutoff:
            # A runner-up's score is lowered by the leader's lead, so half the cut-off lets a
            # close second still be offered.
            choices = [
                top,
                *(c for c in candidates[1 : settings.max_suggestions] if c.score >= settings.suggest_cutoff / 2),
            ]
            return Match(query, SUGGEST, top.id, top.score, tuple(choices))
        return Match(query, NONE, None, top.score, tuple(candidates[:limit]))

    def match_many(self, queries: Sequence[str]) -> list[Match]:
        """Several queries with one batched embedding (evaluation and benchmarks)."""
        vectors = self.encoder.embed(list(queries)) if queries else []
        return [self.match(q, vector=v) for q, v in zip(queries, vectors, strict=True)]
