"""String similarity over the editors' phrasings, with rapidfuzz: the lexical half of matching.

The sentence encoder (``bot.nlu.encoder``) knows what a message means; it is less sure of
a misspelt product word or a phrasing typed almost exactly as written in the file. The
scores here catch those: typos, run-together words and rare words shared with a phrasing
(weighted by how rare they are in the KB). :class:`FuzzyMatcher` is the matcher we had
before the encoder, kept as the baseline the benchmarks measure against.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from functools import cached_property

import numpy as np
from rapidfuzz import fuzz, process

from bot.kb.model import KnowledgeBase
from bot.kb.normalize import content_words
from bot.kb.result import ANSWER, NONE, SUGGEST, Candidate, Match, MatchSettings

# The cut-offs calibrated for this matcher alone (tests/data/paraphrases.yml).
FUZZY_SETTINGS = MatchSettings(answer_cutoff=60.0, suggest_cutoff=48.0, margin=10.0)


def char_score(query: str, choice: str) -> float:
    """Character-level similarity of two content-word strings, 0-100.

    ``token_set_ratio`` forgives extra words and word order (customers add context:
    "my router is blinking red since yesterday") but gives a perfect score to any subset;
    mixing in ``token_sort_ratio`` pulls such matches down in proportion to what is
    missing. Catches typos and run-together words that a word index would miss.
    """
    if not query or not choice:
        return 0.0
    return max(
        0.6 * fuzz.token_set_ratio(query, choice) + 0.4 * fuzz.token_sort_ratio(query, choice),
        0.95 * fuzz.ratio(query, choice),
    )


def char_scores(query: str, choices: Sequence[str]) -> np.ndarray:
    """:func:`char_score` of ``query`` against each of ``choices``, in three calls into
    rapidfuzz instead of three per choice (a large KB's candidates run to hundreds)."""
    if not query or not choices:
        return np.zeros(len(choices))
    choices = list(choices)
    token_set = process.cdist([query], choices, scorer=fuzz.token_set_ratio, dtype=np.float64)[0]
    token_sort = process.cdist([query], choices, scorer=fuzz.token_sort_ratio, dtype=np.float64)[0]
    ratio = process.cdist([query], choices, scorer=fuzz.ratio, dtype=np.float64)[0]
    out = np.maximum(0.6 * token_set + 0.4 * token_sort, 0.95 * ratio)
    out[[not choice for choice in choices]] = 0.0
    return out


class WordIndex:
    """Word-level matching weighted by rarity (IDF), with fuzzy word equality.

    Character similarity alone rates "banana pancake recipe" 60/100 against some
    question; words shared with an entry, weighted by how rare they are across the KB
    ("router" says more than "problem"), separate real questions from noise. Words are
    compared with rapidfuzz so "pasword", "payments" and "счета" still meet "password",
    "payment" and "счет".
    """

    WORD_CUTOFF = 80.0
    SHORT_WORD = 3

    def __init__(
        self,
        variants: Sequence[Iterable[str]],
        owners: Sequence[Hashable],
        entry_words: Sequence[frozenset[str]] | None = None,
        document_frequency: Counter[str] | None = None,
    ) -> None:
        """``variants``: each phrasing's words; ``owners``: the entry each belongs to;
        ``entry_words``: each entry's words, when the caller keeps them (a reload reuses
        the unchanged entries' sets) and ``document_frequency``, how many entries use each
        word, when the caller updated the previous one (a reload counts only what changed)."""
        self.variants = [v if isinstance(v, frozenset) else frozenset(v) for v in variants]
        if entry_words is None:
            groups: dict[Hashable, set[str]] = {}
            for words, owner in zip(self.variants, owners, strict=False):
                groups.setdefault(owner, set()).update(words)
            entry_words = [frozenset(words) for words in groups.values()]
        self.entry_words = entry_words
        if document_frequency is None:
            document_frequency = Counter()
            for words in entry_words:
                document_frequency.update(words)
        self.document_frequency = +document_frequency  # drops the words no entry uses any more
        n = max(1, len(entry_words))
        self.idf = {w: math.log(1 + n / count) for w, count in self.document_frequency.items()}
        self.unknown_idf = math.log(1 + n / 0.5)
        self.vocabulary = list(self.idf)
        self._weights: dict[int, float] = {}

    def weight(self, index: int) -> float:
        """The IDF weight of a phrasing's words (computed when first scored: a reload of a
        large KB does not pay for 250,000 sums that few queries ever need)."""
        weight = self._weights.get(index)
        if weight is None:
            weight = self._weights[index] = sum(self.idf[w] for w in self.variants[index])
        return weight

    @cached_property
    def postings(self) -> dict[str, list[int]]:
        """Every phrasing that uses each word (built on first use, by the baseline matcher)."""
        postings: dict[str, list[int]] = defaultdict(list)
        for index, words in enumerate(self.variants):
            for word in words:
                postings[word].append(index)
        return postings

    def similar(self, word: str, vocabulary: Sequence[str] | None = None) -> dict[str, float]:
        """Vocabulary words close enough to ``word``, with similarity 0-1; ``vocabulary``:
        look only among these (the words of the phrasings about to be scored)."""
        found = {word: 1.0} if word in self.idf else {}
        if len(word) <= self.SHORT_WORD:
            return found
        for other, value, _ in process.extract(
            word,
            self.vocabulary if vocabulary is None else vocabulary,
            scorer=fuzz.ratio,
            score_cutoff=self.WORD_CUTOFF,
            limit=20,
        ):
            found[other] = max(found.get(other, 0.0), value / 100)
        return found

    def scores(
        self, words: list[str], only: set[int] | None = None, vocabulary: Iterable[str] | None = None
    ) -> dict[int, float]:
        """Score 0-100 for every variant sharing a word with the query: the harmonic mean of
        how much of the query it covers and how much of it the query covers, by IDF weight.
        ``only``: score just these variants (the ones another index put forward); a common
        word's postings run to thousands in a large KB; only their words can count, so
        misspellings are looked up among those, not the whole vocabulary. ``vocabulary``:
        the words of ``only`` when the caller has them already (the union of its entries'
        words: 800 phrasings' sets are not merged again for every message)."""
        words = list(dict.fromkeys(words))
        if only is not None and vocabulary is None:
            vocabulary = frozenset().union(*(self.variants[i] for i in only))
        vocabulary = None if vocabulary is None else sorted(vocabulary)
        expansions = [self.similar(w, vocabulary) for w in words]
        query_weights = [self.idf.get(w, self.unknown_idf) for w in words]
        query_total = sum(query_weights) or 1.0
        variants = self.variants
        candidates: set[int] | list[int]
        if only is not None:
            query_words = frozenset().union(*expansions)
            candidates = [i for i in only if not query_words.isdisjoint(variants[i])]
        else:
            candidates = set()
            for expansion in expansions:
                for word in expansion:
                    candidates.update(self.postings.get(word, ()))
        # Each vocabulary word the query reaches: which query words reach it, how closely, and
        # its place in query order (sums run in that order, so scores do not depend on set order).
        reached: dict[str, list[tuple[int, float]]] = {}
        for position, expansion in enumerate(expansions):
            for word, similarity in expansion.items():
                reached.setdefault(word, []).append((position, similarity))
        rank = {word: n for n, word in enumerate(reached)}
        gain = {word: self.idf[word] * max(s for _, s in pairs) for word, pairs in reached.items()}
        reachable = frozenset(reached)
        out: dict[int, float] = {}
        for index in candidates:
            hits = reachable.intersection(variants[index])
            if len(hits) > 1:
                hits = sorted(hits, key=rank.__getitem__)
            best = [0.0] * len(expansions)
            covered_variant = 0.0
            for word in hits:
                for position, similarity in reached[word]:
                    if similarity > best[position]:
                        best[position] = similarity
                covered_variant += gain[word]
            covered_query = 0.0
            for weight, value in zip(query_weights, best, strict=True):
                covered_query += weight * value
            recall = covered_query / query_total
            precision = covered_variant / (self.weight(index) or 1.0)
            if recall + precision:
                out[index] = 100 * 2 * precision * recall / (precision + recall)
        return out


class FuzzyMatcher:
    """Today's matcher before the encoder (cut-offs on its own 0-100 scale: ``FUZZY_SETTINGS``).

    Pre-processes every phrasing once; a query costs a word-index lookup, one rapidfuzz
    pass over all phrasings, and exact scoring of the few dozen best."""

    PREFILTER = 40

    def __init__(self, kb: KnowledgeBase, settings: MatchSettings | None = None) -> None:
        self.kb = kb
        self.settings = settings or FUZZY_SETTINGS
        self._choices: list[str] = []
        self._owners: list[tuple[str, str]] = []
        for entry in kb.entries:
            for language, text in entry.variants():
                self._choices.append(content_words(text))
                self._owners.append((entry.id, language))
        self._words = WordIndex([c.split() for c in self._choices], [o[0] for o in self._owners])

    def _variant_scores(self, processed: str) -> dict[int, float]:
        word_scores = self._words.scores(processed.split())
        by_chars = process.extract(
            processed, self._choices, scorer=fuzz.token_set_ratio, processor=None, limit=self.PREFILTER
        )
        by_words = sorted(word_scores, key=word_scores.get, reverse=True)[: self.PREFILTER]
        candidates = {index for _, _, index in by_chars} | set(by_words)
        return {
            index: 0.5 * char_score(processed, self._choices[index]) + 0.5 * word_scores.get(index, 0.0)
            for index in candidates
        }

    def match(self, query: str, limit: int = 3) -> Match:
        settings = self.settings
        processed = content_words(query)
        if not processed or not self._choices:
            return Match(query=query, decision=NONE, id=None, score=0.0)
        best: dict[str, Candidate] = {}
        for index, value in self._variant_scores(processed).items():
            entry_id, language = self._owners[index]
            if entry_id not in best or value > best[entry_id].score:
                best[entry_id] = Candidate(entry_id, round(value, 1), language)
        ranked = sorted(best.values(), key=lambda c: (-c.score, c.id))
        top = ranked[0]
        runner_up = ranked[1].score if len(ranked) > 1 else 0.0
        if top.score >= settings.answer_cutoff and top.score - runner_up >= settings.margin:
            return Match(query, ANSWER, top.id, top.score, tuple(ranked[:limit]))
        if top.score >= settings.suggest_cutoff:
            choices = [c for c in ranked[: settings.max_suggestions] if c.score >= settings.suggest_cutoff]
            return Match(query, SUGGEST, top.id, top.score, tuple(choices))
        return Match(query, NONE, None, top.score, tuple(ranked[:limit]))
