"""Text normalisation shared by the validator and the matcher.

Both must fold text the same way, or the validator would accept two phrasings the
matcher cannot tell apart. Folding is script-neutral (NFKC, casefold, Unicode categories),
so Cyrillic and Georgian fold as well as Latin text.
"""

from __future__ import annotations

import unicodedata

_DROP = {"'", "\u2019", "\u02bc", "`", "\u00b4"}
_FOLD = str.maketrans({"ё": "е"})


def normalize(text: str) -> str:
    """Casefolded words separated by single spaces; punctuation and symbols removed.

    Apostrophes are dropped rather than split on so that "don't" and "dont" (how people
    type on phones) become the same word; Russian "ё" folds to "е" for the same reason.
    """
    text = unicodedata.normalize("NFKC", text).casefold().translate(_FOLD)
    out = []
    for char in text:
        if char in _DROP:
            continue
        category = unicodedata.category(char)
        out.append(" " if category[0] in "PSZC" else char)
    return " ".join("".join(out).split())


# Words that carry no topic in a support question. Removing them stops "how do I ..."
# from making every question look alike; lists are short on purpose.
STOPWORDS: frozenset[str] = frozenset(
    [
        "a",
        "an",
        "the",
        "i",
        "im",
        "me",
        "my",
        "mine",
        "we",
        "our",
        "you",
        "your",
        "it",
        "its",
        "is",
        "are",
        "am",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "doing",
        "have",
        "has",
        "had",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "from",
        "with",
        "by",
        "about",
        "as",
        "into",
        "onto",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "what",
        "whats",
        "which",
        "who",
        "whom",
        "how",
        "hows",
        "when",
        "where",
        "wheres",
        "why",
        "please",
        "pls",
        "plz",
        "hi",
        "hello",
        "hey",
        "thanks",
        "thank",
        "just",
        "get",
        "got",
        "so",
        "and",
        "or",
        "if",
        "any",
        "some",
        "need",
        "want",
        "wanna",
        "like",
        "know",
        "tell",
        "there",
        "theres",
        "как",
        "где",
        "что",
        "когда",
        "почему",
        "мне",
        "мой",
        "моя",
        "мои",
        "моё",
        "мое",
        "у",
        "я",
        "в",
        "на",
        "с",
        "по",
        "и",
        "а",
        "ли",
        "это",
        "ли",
        "же",
        "ну",
        "пожалуйста",
        "можно",
        "нужно",
        "ко",
        "от",
        "до",
        "за",
        "из",
        "როგორ",
        "სად",
        "რა",
        "როდის",
        "რატომ",
        "მე",
        "ჩემი",
        "და",
        "არის",
        "თუ",
        "ან",
    ]
)


def content_words(text: str) -> str:
    """The normalised text without stop words; falls back to all words if nothing is left."""
    words = normalize(text).split()
    kept = [w for w in words if w not in STOPWORDS]
    return " ".join(kept or words)
