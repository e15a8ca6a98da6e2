"""The knowledge base as plain values: what the loader builds and the matcher reads.

Text that editors may translate is held as a ``{language: text}`` mapping, so a single
entry can answer in English, Russian and Georgian alike; plain strings in a file are
stored under that file's language.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_LANGUAGE = "en"

Localized = dict[str, str]


def pick(text: Localized, language: str | None, fallback: str = DEFAULT_LANGUAGE) -> str:
    """Return the text in ``language`` when the editor wrote one, else a sensible fallback.

    The fallback order (requested, default, first written) means a customer always gets
    an answer, in their own language whenever an editor provided it.
    """
    if language and language in text:
        return text[language]
    if fallback in text:
        return text[fallback]
    return next(iter(text.values()))


@dataclass(frozen=True)
class Button:
    """A quick reply: either jumps to another entry or sends ``text`` as the customer."""

    title: Localized
    entry: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class Link:
    title: Localized
    url: str


@dataclass(frozen=True)
class Entry:
    id: str
    question: Localized
    alternatives: dict[str, tuple[str, ...]]
    answer: Localized
    tags: tuple[str, ...] = ()
    buttons: tuple[Button, ...] = ()
    links: tuple[Link, ...] = ()
    handoff: bool = False
    # Customer wordings an editor expects this entry to answer; ``kb check`` runs them
    # through the matcher (they are not phrasings: the matcher does not learn from them).
    tests: tuple[str, ...] = ()
    source: str = ""
    line: int = 0

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.question)

    def variants(self) -> list[tuple[str, str]]:
        """All phrasings an editor wrote, as ``(language, text)`` pairs."""
        out = [(lang, text) for lang, text in self.question.items()]
        for lang, texts in self.alternatives.items():
            out.extend((lang, text) for text in texts)
        return out


@dataclass(frozen=True)
class KnowledgeBase:
    entries: tuple[Entry, ...] = ()
    by_id: dict[str, Entry] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, entries: list[Entry] | tuple[Entry, ...]) -> KnowledgeBase:
        return cls(tuple(entries), {e.id: e for e in entries})

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, entry_id: str) -> Entry | None:
        return self.by_id.get(entry_id)
