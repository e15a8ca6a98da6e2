"""Guess a customer's language from the script they write in.

Good enough to route and to label the handoff card (Cyrillic -> Russian, Georgian ->
Georgian, otherwise English); the KB matcher's language wins when it has one.
"""

from __future__ import annotations


def guess_language(text: str, default: str = "en") -> str:
    cyrillic = sum("\u0400" <= ch <= "\u04ff" for ch in text)
    georgian = sum("\u10a0" <= ch <= "\u10ff" or "\u1c90" <= ch <= "\u1cbf" for ch in text)
    latin = sum(ch.isascii() and ch.isalpha() for ch in text)
    best = max((georgian, "ka"), (cyrillic, "ru"), (latin, default))
    return best[1] if best[0] else default
