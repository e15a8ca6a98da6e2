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
class Option:
    """One answer a customer can tap (or type) at a guide's step, and where it leads.

    ``then`` is the id of the next step, ``done`` (the guide ends: the option's ``reply``
    or the guide's ``resolved`` message), ``handoff`` (a person takes over, with the steps
    tried on their card) or ``guide:<id>`` (another guide takes over).
    """

    title: Localized
    then: str
    means: str | None = None  # "yes" | "no" | "unsure": what a typed answer must mean to pick it
    reply: Localized | None = None
    says: dict[str, tuple[str, ...]] = field(default_factory=dict)  # typed wordings, by language


@dataclass(frozen=True)
class Step:
    """An instruction (``say``, optional) and a check (``ask``) with the answers to it."""

    id: str
    ask: Localized
    options: tuple[Option, ...]
    say: Localized | None = None
    line: int = 0


DONE = "done"
HANDOFF = "handoff"
GUIDE_PREFIX = "guide:"


@dataclass(frozen=True)
class Guide:
    """Ordered troubleshooting steps; the entry that holds it supplies id and phrasings."""

    intro: Localized
    resolved: Localized
    steps: tuple[Step, ...]

    def step(self, step_id: str | None) -> Step | None:
        return next((step for step in self.steps if step.id == step_id), None)

    @property
    def first(self) -> Step:
        return self.steps[0]


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
    # A troubleshooting guide: the bot walks the customer through its steps instead of
    # answering in one message (``answer`` then holds its text for the matcher).
    guide: Guide | None = None
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
