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

from bot.kb.fuzzy import WordIndex, char_scores
from bot.kb.model import DEFAULT_LANGUAGE, KnowledgeBase, pick
from bot.kb.normalize import content_words
from bot.kb.result import ANSWER, NONE, SUGGEST, Candidate, Match, MatchSettings
from bot.language import guess_language

__all__ = ["ANSWER", "NONE", "SUGGEST", "Candidate", "Match", "MatchSettings", "Matcher", "QueryWords", "ScoreModel"]


@dataclass(frozen=True)
class ScoreModel:
    """How the evidence ranks entries and becomes a probability; refit with
    ``bench/calibrate_matcher.py`` on the tuning questions.

    The four weights rank entries (chosen for right-first). The probability that a
    candidate is the right entry is a logistic regression over its evidence, its lead
    over the best other candidate and what the query's words say (``coefficients`` in the
    order of :data:`FEATURES`, then ``bias``), fitted on the three best candidates of every
    tuning question, with out-of-scope questions giving only negatives: a score of 90 means
    about 9 in 10 such answers are right, and two close candidates both score lower, which
    is what turns a vague message into "did you mean".
    """

    nearest: float = 0.3
    centroid: float = 0.3
    answer: float = 0.3
    fuzzy: float = 0.12
    coefficients: tuple[float, ...] = (-1.266, 1.229, -4.861, 2.771, 32.294, 7.623, 4.264)
    bias: float = -7.974
    # ``covered`` of an entry with no phrasing in the query's language, when its own words
    # say less: the mean ``covered`` of the tuning questions' best candidates, so an entry
    # the editors wrote only in English is judged on its vectors, as before the feature.
    unknown_covered: float = 0.566

    def combine(self, nearest, centroid, answer, fuzzy):
        """The ranking score (floats or arrays alike)."""
        return self.nearest * nearest + self.centroid * centroid + self.answer * answer + self.fuzzy * fuzzy

    def probability(self, features: np.ndarray) -> np.ndarray:
        """P(right entry) for rows of :data:`FEATURES`."""
        return 1.0 / (1.0 + np.exp(-(self.bias + features @ np.asarray(self.coefficients))))


# ``covered``: share of the query's content words that the entry's phrasings use, by
# :func:`stems` (a near-domain question often shares only a word or two with the entry its
# vectors land on, a question about the entry most of its words); ``length``: the number of
# content words, up to LONG_QUERY, as a share of it (a two-word message fits several
# entries; a sentence says which one it means).
FEATURES = ("nearest", "centroid", "answer", "fuzzy", "lead", "covered", "length")
LONG_QUERY = 8
STEM = 5


@dataclass(frozen=True)
class QueryWords:
    """What the query's content words say, for :func:`candidate_features`."""

    covered: dict[int, float]
    length: float


def stems(words: frozenset[str] | Sequence[str]) -> frozenset[str]:
    """Words cut to their first STEM letters: "оплатить" and "оплату", "rēķinu" and "rēķins" meet,
    so a Russian or Latvian question in another grammatical case still counts as the
    entry's words (the endings carry the case)."""
    return frozenset(word[:STEM] for word in words)


def query_words(
    words: Sequence[str],
    entries: Sequence[int],
    entry_stems: Sequence[frozenset[str]],
    foreign: Sequence[int] = (),
    unknown_covered: float = 0.0,
) -> QueryWords:
    """The word evidence of ``entries`` for a query of content words ``words``: how much of
    the query each entry speaks about at all (``entry_stems``: each entry's :func:`stems`).

    ``foreign``: entries with no phrasing in the query's language. Their words cannot be
    the query's, so their ``covered`` is at least ``unknown_covered``: a Latvian question
    about an entry written only in English is not held against the entry's English words.
    """
    if not words:
        return QueryWords({}, 0.0)
    share = 1.0 / len(words)
    query = [word[:STEM] for word in words]
    covered = {e: share * sum(stem in entry_stems[e] for stem in query) for e in entries}
    for entry in foreign:
        covered[entry] = max(covered[entry], unknown_covered)
    return QueryWords(covered, min(len(words), LONG_QUERY) / LONG_QUERY)


def candidate_features(
    ranked: Sequence[int],
    nearest: np.ndarray,
    centroid: np.ndarray,
    answer: np.ndarray,
    fuzzy: dict[int, float],
    combined: dict[int, float],
    words: QueryWords,
) -> np.ndarray:
    """One row of :data:`FEATURES` per entry of ``ranked`` (best first); ``lead`` is the
    entry's ranking score minus the best other candidate's (negative for all but the first)."""
    scores = [combined[e] for e in ranked]
    rows = []
    for position, entry in enumerate(ranked):
        others = scores[1:2] if position == 0 else scores[:1]
        lead = scores[position] - (others[0] if others else 0.0)
        rows.append(
            [
                nearest[entry],
                centroid[entry],
                answer[entry],
                fuzzy.get(entry, 0.0),
                lead,
                words.covered.get(entry, 0.0),
                words.length,
            ]
        )
    return np.asarray(rows, dtype=np.float64)


SCORE_MODEL = ScoreModel()
EXACT = 1.0  # the probability given to a phrasing typed as an editor wrote it
SHORT_WORD_MATCH = 0.6  # fuzzy score of an entry whose phrasings use a one-word message's word


def answers_directly(score: float, runner_up: float, words: int, exact: bool, settings: MatchSettings) -> bool:
    """Whether a match with these numbers is answered rather than suggested or declined: a
    score at the answer cut-off, and either the editor's own phrasing typed as written
    (``exact``) or a clear lead over the runner-up on a message of enough words. One rule for
    :meth:`Matcher.match` and the calibration that chooses its cut-offs
    (bench/calibrate_matcher.py), so the cut-offs are chosen for the rule that runs."""
    clear = exact or (score - runner_up >= settings.margin and words >= settings.min_words_to_answer)
    return score >= settings.answer_cutoff and clear


def passage_texts(entry) -> list[tuple[str, str]]:
    """What an entry says, as e5 reads a passage: its question and answer, once per language
    the editors wrote it in (a Georgian question is best compared with the Georgian answer)."""
    languages = list(entry.answer) or [DEFAULT_LANGUAGE]
    return [(language, f"{pick(entry.question, language)}\n{pick(entry.answer, language)}") for language in languages]


MIN_PHRASINGS_FOR_MEAN = 50
# A reload keeps the language means it centred with while the exact means stay this close
# (L2): one edit in a large KB moves them by about 1e-5, and reusing every unchanged
# entry's centred vectors is what makes the reload fast. Cosines move by under 0.005.
MEAN_TOLERANCE = 0.002


@dataclass
class LanguageSums:
    """Per-language sums of raw vectors and their counts: what :func:`language_means`
    averages, kept so that a reload only adds the changed texts and takes the removed ones away."""

    sums: dict[str, np.ndarray]
    counts: dict[str, int]

    @classmethod
    def of(cls, vectors: np.ndarray, languages: Sequence[str]) -> LanguageSums:
        out = cls({}, {})
        out.add(vectors, languages)
        return out

    def copy(self) -> LanguageSums:
        return LanguageSums({k: v.copy() for k, v in self.sums.items()}, dict(self.counts))

    def add(self, vectors: np.ndarray, languages: Sequence[str], sign: int = 1) -> None:
        codes = np.asarray(languages)
        for language in set(codes.tolist()):
            rows = np.flatnonzero(codes == language)
            total = vectors[rows].sum(0, dtype=np.float64)
            self.sums[language] = self.sums.get(language, 0.0) + sign * total
            self.counts[language] = self.counts.get(language, 0) + sign * len(rows)

    def means(self) -> dict[str, np.ndarray]:
        return {
            language: (self.sums[language] / self.counts[language]).astype(np.float32)
            for language in self.sums
            if self.counts[language] >= MIN_PHRASINGS_FOR_MEAN
        }


def means_close(new: dict[str, np.ndarray], old: dict[str, np.ndarray]) -> bool:
    """Whether vectors centred with ``old`` are still good for ``new`` (see MEAN_TOLERANCE)."""
    return new.keys() == old.keys() and all(
        float(np.linalg.norm(new[lang] - old[lang])) <= MEAN_TOLERANCE for lang in new
    )


def language_sums(vectors: np.ndarray, languages: Sequence[str], kind: bytes = b"") -> LanguageSums:
    """The sums behind the mean vector of each language, over the KB's texts and a fixed
    reference set.

    A multilingual encoder puts every Latvian sentence a little closer to every other
    Latvian sentence than to its English twin: a Latvian question drifts to whichever entry
    has Latvian phrasings. Taking each language's mean away from its vectors (and from the
    query, by its detected language) leaves more of the meaning: on the tuning questions,
    right-first in other languages rose from 64% to 77%. The NLU examples in ``data/nlu``
    (small talk, out of scope, in every language) are averaged in, so the mean, and with it
    the calibrated scores, stay the same kind of thing in a two-entry knowledge base.
    """
    reference_vectors, reference_languages = reference_set(kind)
    sums = LanguageSums.of(reference_vectors, reference_languages)
    sums.add(vectors, languages)
    return sums


def language_means(vectors: np.ndarray, languages: Sequence[str], kind: bytes = b"") -> dict[str, np.ndarray]:
    """The mean vector of each language with enough texts (see :func:`language_sums`)."""
    return language_sums(vectors, languages, kind).means()


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


def entry_texts(entry) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """What the matcher embeds of an entry: its phrasings and its passages, as
    ``(language, text)`` pairs. Equal tuples mean a reload can reuse the entry's rows."""
    return tuple(entry.variants()), tuple(passage_texts(entry))


def _texts_and_reuse(kb: KnowledgeBase, previous: Matcher | None) -> tuple[list[tuple], list[int | None]]:
    """Each entry's :func:`entry_texts`, and the previous matcher's entry with the same
    texts (each used once). An entry object the previous KB already held (the store keeps
    unchanged files' entries) is taken as it is, without comparing its texts."""
    if previous is None:
        return [entry_texts(entry) for entry in kb.entries], [None] * len(kb.entries)
    same_object = {id(entry): number for number, entry in enumerate(previous.kb.entries)}
    texts: list[tuple] = []
    reuse: list[int | None] = []
    taken: set[int] = set()
    pending: list[int] = []
    for number, entry in enumerate(kb.entries):
        old = same_object.get(id(entry))
        if old is not None and previous.kb.entries[old] is entry and old not in taken:
            texts.append(previous._texts[old])
            reuse.append(old)
            taken.add(old)
        else:
            texts.append(entry_texts(entry))
            reuse.append(None)
            pending.append(number)
    if pending:
        available: dict[tuple, list[int]] = {}
        for old, key in enumerate(previous._texts):
            if old not in taken:
                available.setdefault(key, []).append(old)
        for number in pending:
            olds = available.get(texts[number])
            if olds:
                reuse[number] = olds.pop(0)
    return texts, reuse


def _merge(spans: Sequence[tuple[bool, int, int]]) -> list[tuple[bool, int, int]]:
    """Join spans that continue each other in the same source (an edit leaves three)."""
    merged: list[tuple[bool, int, int]] = []
    for source, start, stop in spans:
        if merged and merged[-1][0] == source and merged[-1][2] == start:
            merged[-1] = (source, merged[-1][1], stop)
        elif stop > start:
            merged.append((source, start, stop))
    return merged


def gather_rows(old: np.ndarray, new: np.ndarray, spans: Sequence[tuple[bool, int, int]]) -> np.ndarray:
    """Rows ``start:stop`` of ``old`` (source True) or ``new``, in the order of ``spans``."""
    pieces = [(old if source else new)[start:stop] for source, start, stop in _merge(spans)]
    return np.concatenate(pieces) if pieces else new[:0]


def gather_list(old: list, new: list, spans: Sequence[tuple[bool, int, int]]) -> list:
    """:func:`gather_rows` for lists."""
    out: list = []
    for source, start, stop in _merge(spans):
        out.extend((old if source else new)[start:stop])
    return out


def centroids_of(vectors: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """The normalised mean of each consecutive group of ``counts`` rows."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    centroids = np.add.reduceat(vectors, starts) / counts[:, None]
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    return (centroids / np.where(norms == 0, 1, norms)).astype(np.float32)


def _entries_using(
    entry_words: Sequence[frozenset[str]],
    reuse: Sequence[int | None],
    fresh: Sequence[int],
    previous: Matcher | None,
) -> dict[str, tuple[int, ...]]:
    """Which entries use each word, in entry order: a rare word's phrasings are found among
    those entries, not by testing all 5,000 entries' sets on the message's path.

    Built in about 0.4 s for 5,000 entries; a reload that kept every entry in its place (an
    editor changed some of them) updates only the changed entries' words."""
    same_places = (
        previous is not None
        and len(reuse) == len(previous._texts)
        and all(old is None or old == number for number, old in enumerate(reuse))
    )
    if not same_places:
        found: dict[str, list[int]] = {}
        for entry, words in enumerate(entry_words):
            for word in words:
                entries = found.get(word)
                if entries is None:
                    found[word] = [entry]
                else:
                    entries.append(entry)
        return {word: tuple(entries) for word, entries in found.items()}
    postings = dict(previous._entries_using)
    changed = frozenset(fresh)
    old_words = previous._words.entry_words
    for word in frozenset().union(*(old_words[n] for n in fresh), *(entry_words[n] for n in fresh)):
        entries = [e for e in postings.get(word, ()) if e not in changed]
        entries += [n for n in fresh if word in entry_words[n]]
        if entries:
            postings[word] = tuple(sorted(entries))
        else:
            postings.pop(word, None)
    return postings


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
        previous: Matcher | None = None,
    ) -> None:
        """``previous``: the matcher this one replaces after an edit. Entries whose texts did
        not change keep their analysed phrasings, centred vectors and centroids (as long as
        the language means stay within :data:`MEAN_TOLERANCE`); only the changed entries are
        embedded and normalised. In a 5,000-entry KB that is the difference between seconds
        and a fraction of one."""
        if encoder is None:
            from bot.nlu.encoder import get_encoder

            encoder = get_encoder()
        self.kb = kb
        self.settings = settings or MatchSettings()
        self.encoder = encoder
        self.model = model
        if previous is not None and (previous.encoder is not encoder or previous.model != model):
            previous = None
        self._texts, reuse = _texts_and_reuse(kb, previous)
        fresh = [number for number, old in enumerate(reuse) if old is None]
        removed = sorted(set(range(len(previous._texts))) - set(reuse)) if previous is not None else []
        self._analyse_words(reuse, fresh, previous)
        self._entries_using = _entries_using(self._words.entry_words, reuse, fresh, previous)
        self._build_vectors(reuse, fresh, removed, previous, passages=False)
        self._build_vectors(reuse, fresh, removed, previous, passages=True)
        # An editor's own phrasing, typed as written (up to case, punctuation and filler
        # words), is answered whatever the vectors say (the first entry wins a tie).
        owners = self._owner.tolist()
        self._exact: dict[str, int] = dict(zip(self._processed[::-1], owners[::-1], strict=True))
        self._exact.pop("", None)
        self._rare_rows: dict[str, tuple[list[int], frozenset[str]]] = {}
        self._rows_of: dict[int, range] = {
            number: range(start, start + count)
            for number, (start, count) in enumerate(zip(self._starts.tolist(), self._counts.tolist(), strict=True))
        }

    def _analyse_words(self, reuse: list[int | None], fresh: list[int], previous: Matcher | None) -> None:
        """Each phrasing's content words and language, per row; each entry's words."""
        counts = np.fromiter((len(variants) for variants, _ in self._texts), dtype=np.int64, count=len(self._texts))
        self._counts = counts
        self._owner = np.repeat(np.arange(len(self._texts), dtype=np.int64), counts)
        self._starts = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64) if len(counts) else np.empty(0, np.int64)
        processed: list[str] = []
        language: list[str] = []
        row_words: list[frozenset[str]] = []
        fresh_rows: dict[int, tuple[int, int]] = {}
        for number in fresh:
            start = len(processed)
            for lang, text in self._texts[number][0]:
                words = content_words(text)
                processed.append(words)
                language.append(lang)
                row_words.append(frozenset(words.split()))
            fresh_rows[number] = (start, len(processed))
        entry_words_new = [frozenset().union(*row_words[slice(*fresh_rows[n])]) for n in fresh]
        entry_stems_new = [stems(words) for words in entry_words_new]
        spans = []
        entry_spans = []
        fresh_slot = {number: slot for slot, number in enumerate(fresh)}
        for number, old in enumerate(reuse):
            if old is None:
                spans.append((False, *fresh_rows[number]))
                entry_spans.append((False, fresh_slot[number], fresh_slot[number] + 1))
            else:
                start = int(previous._starts[old])
                spans.append((True, start, start + len(self._texts[number][0])))
                entry_spans.append((True, old, old + 1))
        if previous is None:
            self._processed, self._language, words, entry_words = processed, language, row_words, entry_words_new
            self._entry_stems = entry_stems_new
        else:
            self._entry_stems = gather_list(previous._entry_stems, entry_stems_new, entry_spans)
            self._processed = gather_list(previous._processed, processed, spans)
            self._language = gather_list(previous._language, language, spans)
            words = gather_list(previous._words.variants, row_words, spans)
            entry_words = gather_list(previous._words.entry_words, entry_words_new, entry_spans)
        frequency = None
        if previous is not None:
            kept = {old for old in reuse if old is not None}
            frequency = previous._words.document_frequency.copy()
            for old, old_words in enumerate(previous._words.entry_words):
                if old not in kept:
                    frequency.subtract(old_words)
            for new_words in entry_words_new:
                frequency.update(new_words)
        self._words = WordIndex(words, self._owner, entry_words, frequency)

    def _build_vectors(
        self,
        reuse: list[int | None],
        fresh: list[int],
        removed: list[int],
        previous: Matcher | None,
        passages: bool,
    ) -> None:
        """The centred phrasing vectors and centroids (or the centred passage vectors), from
        the previous matcher's rows for unchanged entries when the means allow it."""
        from bot.nlu.encoder import PASSAGE, QUERY

        kind = PASSAGE if passages else QUERY
        side = 1 if passages else 0  # which half of entry_texts

        def rows_of(numbers: Sequence[int], texts: list) -> tuple[list[str], list[str]]:
            pairs = [pair for n in numbers for pair in texts[n][side]]
            return [text for _, text in pairs], [lang for lang, _ in pairs]

        empty = np.empty((0, self.encoder.dim), np.float32)

        def embed(texts: list[str]) -> np.ndarray:
            return self.encoder.embed(texts, kind) if texts else empty

        fresh_texts, fresh_languages = rows_of(fresh, self._texts)
        fresh_raw = embed(fresh_texts)
        if previous is None:
            sums = language_sums(fresh_raw, fresh_languages, kind)
        else:
            sums = (previous._passage_sums if passages else previous._sums).copy()
            sums.add(fresh_raw, fresh_languages)
            removed_texts, removed_languages = rows_of(removed, previous._texts)
            sums.add(embed(removed_texts), removed_languages, sign=-1)
        means = sums.means()
        old_means = None if previous is None else (previous._passage_means if passages else previous._means)
        keep = old_means is not None and means_close(means, old_means)
        counts = [len(texts[side]) for texts in self._texts]
        ends = np.cumsum(counts, dtype=np.int64)
        starts = ends - np.asarray(counts, dtype=np.int64)
        fresh_slot = {number: slot for slot, number in enumerate(fresh)}
        if keep:
            means = old_means
            centred_fresh = center_languages(fresh_raw, fresh_languages, means)
        elif len(fresh) == len(self._texts):
            vectors = center_languages(fresh_raw, fresh_languages, means)
        else:
            all_texts, all_languages = rows_of(range(len(self._texts)), self._texts)
            vectors = center_languages(embed(all_texts), all_languages, means)
        if passages:
            if keep:
                old_ends = previous._passage_ends
                spans, position = [], 0
                for number, old in enumerate(reuse):
                    if old is None:
                        spans.append((False, position, position + counts[number]))
                        position += counts[number]
                    else:
                        spans.append((True, int(old_ends[old]) - counts[number], int(old_ends[old])))
                vectors = gather_rows(previous._passages, centred_fresh, spans)
            self._passage_sums, self._passage_means, self._passages = sums, means, vectors
            self._passage_starts, self._passage_ends = starts, ends
            return
        self._sums, self._means = sums, means
        if keep:
            # Unchanged entries keep their rows (views of an earlier matrix): nothing of the
            # 250,000 x 384 phrasing matrix of a large KB is copied on a reload.
            fresh_starts = np.r_[0, np.cumsum([counts[n] for n in fresh], dtype=np.int64)]
            self._entry_vectors = [
                previous._entry_vectors[old]
                if old is not None
                else centred_fresh[fresh_starts[fresh_slot[number]] : fresh_starts[fresh_slot[number] + 1]]
                for number, old in enumerate(reuse)
            ]
            fresh_centroids = centroids_of(centred_fresh, [counts[n] for n in fresh]) if fresh else empty
            entry_spans = [
                (False, fresh_slot[number], fresh_slot[number] + 1) if old is None else (True, old, old + 1)
                for number, old in enumerate(reuse)
            ]
            self._centroids = gather_rows(previous._centroids, fresh_centroids, entry_spans)
        else:
            self._entry_vectors = [
                vectors[start:end] for start, end in zip(starts.tolist(), ends.tolist(), strict=True)
            ]
            self._centroids = centroids_of(vectors, counts) if counts else empty

    @property
    def phrasing_vectors(self) -> np.ndarray:
        """All centred phrasing vectors, entry by entry (a copy: for checks, not for queries)."""
        if not self._entry_vectors:
            return np.empty((0, self.encoder.dim), np.float32)
        return np.concatenate(self._entry_vectors)

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
            nearest[entry] = float(np.max(self._entry_vectors[entry] @ vector))
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
        word_scores = {}
        if words:
            # The words of those phrasings: whole entries' sets, and the rare word's rows' set.
            entry_words = self._words.entry_words
            vocabulary = frozenset().union(*(entry_words[entry] for entry in candidates))
            rare = max(words, key=lambda w: self._words.idf.get(w, 0.0))
            if self._words.idf.get(rare, 0.0) >= self.RARE_WORD_IDF:
                rare_rows, rare_vocabulary = self._rows_using(rare)
                rows.update(rare_rows)
                vocabulary |= rare_vocabulary
            word_scores = self._words.scores(words, only=rows, vocabulary=vocabulary)
        by_words: dict[int, float] = {}
        for row, value in word_scores.items():
            entry = int(self._owner[row])
            by_words[entry] = max(by_words.get(entry, 0.0), value)
        # Ties go to the earlier entry, whatever order the scores came in.
        candidates.update(sorted(by_words, key=lambda e: (-by_words[e], e))[: self.WORD_CANDIDATES])
        fuzzy: dict[int, float] = {}
        ordered = sorted(candidates)
        rows_of = [self._rows_of[entry] for entry in ordered]
        characters = char_scores(processed, [self._processed[row] for rows in rows_of for row in rows])
        position = 0
        for entry, rows in zip(ordered, rows_of, strict=True):
            if nearest[entry] == -1.0:  # put forward by its words only
                nearest[entry] = float(np.max(self._entry_vectors[entry] @ vector))
            if answer[entry] == -1.0:
                answer[entry] = self._passage_scores(np.array([entry]), vector)[0]
            chars = characters[position : position + len(rows)]
            position += len(rows)
            words_of = np.fromiter((word_scores.get(row, 0.0) for row in rows), dtype=np.float64, count=len(rows))
            fuzzy[entry] = max(0.0, float(np.max(0.5 * chars + 0.5 * words_of))) / 100.0
        return nearest, centroid, answer, fuzzy

    def query_words(self, query: str, entries: Sequence[int], language: str | None = None) -> QueryWords:
        """The word evidence (:class:`QueryWords`) of ``entries`` for ``query``, asked in
        ``language`` (guessed when not given; "" when it cannot be told)."""
        if language is None:
            language = guess_language(query, default="")
        foreign = [e for e in entries if not self._speaks(e, language)] if language else []
        return query_words(
            content_words(query).split(), entries, self._entry_stems, foreign, self.model.unknown_covered
        )

    def _rows_using(self, word: str) -> tuple[list[int], frozenset[str]]:
        """The first ``RARE_WORD_ROWS`` phrasings that use ``word`` (a rare word, so few
        entries; the vocabulary's words only, so the cache is bounded by the KB), and their
        words."""
        found = self._rare_rows.get(word)
        if found is None:
            rows: list[int] = []
            variants = self._words.variants
            for entry in self._entries_using.get(word, ()):
                span = self._rows_of[entry]
                rows += [row for row, words in enumerate(variants[span.start : span.stop], span.start) if word in words]
                if len(rows) >= self.RARE_WORD_ROWS:
                    break
            rows = rows[: self.RARE_WORD_ROWS]
            found = self._rare_rows[word] = (rows, frozenset().union(*(variants[row] for row in rows)))
        return found

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

    def _speaks(self, entry: int, language: str) -> bool:
        """Whether the entry has a phrasing in ``language`` (asked of a query's few candidates)."""
        rows = self._rows_of[entry]
        return language in self._language[rows.start : rows.stop]

    def _closest_language(self, entry: int, vector: np.ndarray, detected: str) -> str:
        """The language the query was asked in, if the entry has it; else that of the entry's
        phrasing nearest to the query."""
        if detected and self._speaks(entry, detected):
            return detected
        rows = self._rows_of[entry]
        return self._language[rows.start + int(np.argmax(self._entry_vectors[entry] @ vector))]

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
        word_evidence = self.query_words(query, entries, lang)
        features = candidate_features(entries, nearest, centroid, answer, fuzzy, combined, word_evidence)
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
        if answers_directly(top.score, runner_up, words, exact is not None, settings):
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
