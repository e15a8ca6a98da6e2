"""What a typed reply to a guide's check means: yes, no, unsure, "none of this helps", or
none of those (a new question: the guide steps aside and the bot answers it).

Customers type "yes it's green now", "still nothing", "да", "ne", "hindi pa rin" as often
as they tap. A word list alone misses "still nothing" and "i dalje ništa"; the sentence
encoder alone is unsure on one-word replies and can read a new question ("what about my
bill?") as an answer. So, cheapest first:

1. a one-word reply ("yes", "нет", "კი", "jā", "opo") is read from a small lexicon;
2. otherwise a logistic regression over the reply's vector (the one the NLU pipeline
   already made) tells the labelled replies (``data/guides/typed_answers.yml``) from
   "other": the knowledge base's own questions and the small talk in ``data/nlu``. A reply
   counts as an answer only when the classifier is confident it is one.

The option a meaning picks is the guide's business (``bot.kb.guides``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from bot.kb.model import KnowledgeBase
from bot.kb.normalize import normalize

YES, NO, UNSURE, NOT_HELPED, OTHER = "yes", "no", "unsure", "not_helped", "other"
MEANINGS = (YES, NO, UNSURE, NOT_HELPED)
DATA = Path(__file__).resolve().parents[2] / "data" / "guides" / "typed_answers.yml"


def _words(*lines: str) -> frozenset[str]:
    return frozenset(" ".join(lines).split())


# One-word replies, after normalisation (lower case, no punctuation or diacritics marks
# that normalize() folds). Words that begin longer replies with another meaning ("не
# знаю", "ne znam", "not sure") are left to the vectors: only whole one-word replies count.
LEXICON: dict[str, frozenset[str]] = {
    YES: _words(
        "yes yeah yep yup ya yea y yess yesss sure correct affirmative works worked fixed solved "
        "да ага угу конечно заработало работает "
        "კი ჰო ხო ki ho kho "
        "da jeste jes јесте radi "
        "ja jā jaa strādā izdevās "
        "oo opo oho ayos gumana",
    ),
    NO: _words(
        "no nope nah nop noo nooo negative nothing "
        "нет неа net не ничего "
        "არა ara არაფერი "
        "ne nije ništa nista ништа "
        "nē nee nekas "
        "hindi di wala hinde",
    ),
    UNSURE: frozenset(
        [
            *_words(
                "unsure dunno idk maybe perhaps hmm hm незнаю хз возможно может არვიცი neznam možda mozda можда",
                "nezinu varbūt ewan siguro baka",
            ),
            "не знаю",
            "არ ვიცი",
            "ne znam",
            "не знам",
            "ewan ko",
            "hindi ko alam",
            "not sure",
            "no idea",
            "dont know",
            "i dont know",
        ]
    ),
}

# A probability this high from the classifier (below) makes a reply an answer. Chosen on
# the training replies by cross-validation (at 0.7: three in four replies read, 98% of them
# right, 1% of customers' questions taken for an answer); held-out figures are in
# docs/benchmarks.md (bench/guide_answers.py).
MIN_PROBABILITY = 0.7
# Intents of what people say that are never an answer, whatever the words.
OTHER_INTENTS = ("greet", "goodbye", "thanks", "bot_challenge", "request_human", "out_of_scope")
NLU_DIR = Path(__file__).resolve().parents[2] / "data" / "nlu"
MAX_QUESTIONS = 3000


@dataclass(frozen=True)
class Examples:
    texts: tuple[str, ...]
    labels: np.ndarray  # index into MEANINGS
    vectors: np.ndarray  # unit rows


@lru_cache(maxsize=1)
def load_examples(path: Path = DATA) -> dict[str, list[str]]:
    """``{meaning: [reply, ...]}`` from the labelled file (all languages together)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out: dict[str, list[str]] = {}
    for meaning in MEANINGS:
        by_language = raw.get(meaning) or {}
        out[meaning] = [str(text) for texts in by_language.values() for text in texts or ()]
    return out


@lru_cache(maxsize=1)
def typed_answer_examples() -> Examples:
    """The labelled replies with their vectors, embedded once per process."""
    from bot.nlu.encoder import get_encoder

    examples = load_examples()
    texts = [text for meaning in MEANINGS for text in examples[meaning]]
    labels = np.array([index for index, meaning in enumerate(MEANINGS) for _ in examples[meaning]])
    return Examples(tuple(texts), labels, _unit(get_encoder().embed(texts)))


def small_talk_examples() -> list[str]:
    """Greetings, thanks, "are you a bot", "a person please" from the NLU data: never answers."""
    out: list[str] = []
    for path in sorted(NLU_DIR.glob("*.yml")):
        for block in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu") or []:
            if block.get("intent") in OTHER_INTENTS:
                out += [
                    line[2:].strip() for line in str(block.get("examples") or "").splitlines() if line.startswith("- ")
                ]
    return out


def question_examples(kb: KnowledgeBase) -> list[str]:
    """The knowledge base's phrasings (already embedded by the matcher), thinned evenly to
    at most ``MAX_QUESTIONS``: what a new question looks like."""
    texts = [text for entry in kb.entries for _, text in entry.variants()]
    if len(texts) > MAX_QUESTIONS:
        texts = texts[:: -(-len(texts) // MAX_QUESTIONS)]
    return texts


_model: tuple[object, object] | None = None  # (knowledge base it was trained with, classifier)


def classifier(kb: KnowledgeBase | None):
    """A logistic regression over the sentence vectors: the four meanings against
    "other" (the KB's questions and small talk), balanced so the many questions do not
    drown the few replies. Trained once per process, in about a second; it does not follow
    every KB edit (it only needs to know what questions look like in general)."""
    global _model
    if _model is not None:
        return _model[1]
    from sklearn.linear_model import LogisticRegression

    from bot.nlu.encoder import get_encoder

    examples = typed_answer_examples()
    others = [*small_talk_examples(), *(question_examples(kb) if kb is not None else [])]
    other_vectors = _unit(get_encoder().embed(others)) if others else np.zeros((0, examples.vectors.shape[1]))
    features = np.vstack([examples.vectors, other_vectors]).astype(np.float64)
    labels = np.concatenate([examples.labels, np.full(len(others), len(MEANINGS))])
    model = LogisticRegression(C=10.0, max_iter=3000, class_weight="balanced").fit(features, labels)
    _model = (kb, model)
    return model


def _unit(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


def lexicon_meaning(text: str) -> str | None:
    """The meaning of a one-word reply ("yes", "нет", "opo"), or of a reply whose words all
    say the same ("yes yes", "no no no", "oo po" is left to the vectors)."""
    words = normalize(text).split()
    if not words or len(words) > 3:
        return None
    phrase = " ".join(words)
    for meaning, vocabulary in LEXICON.items():
        if phrase in vocabulary or all(word in vocabulary for word in words):
            return meaning
    return None


def meaning(text: str, vector: np.ndarray | None = None, kb: KnowledgeBase | None = None) -> str | None:
    """``yes``, ``no``, ``unsure``, ``not_helped``, or ``None`` when the reply is not an
    answer to a check (a new question, small talk)."""
    if not text.strip() or text.startswith("/"):
        return None
    found = lexicon_meaning(text)
    if found is not None:
        return found
    if vector is None:
        from bot.nlu.encoder import get_encoder

        vector = get_encoder().embed([text])[0]
    query = _unit(np.asarray(vector, dtype=np.float32).reshape(1, -1)).astype(np.float64)
    probabilities = classifier(kb).predict_proba(query)[0]
    best = int(probabilities.argmax())
    if best < len(MEANINGS) and probabilities[best] >= MIN_PROBABILITY:
        return MEANINGS[best]
    return None
