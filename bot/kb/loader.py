"""Load ``data/faq/*.yml`` into a :class:`KnowledgeBase`, reporting every problem at once.

Editors fix files faster when they see all mistakes in one run, each as
``path:line: message`` (the format editors and CI annotations understand), so the
validator keeps going after the first problem and never raises on bad content.
We walk PyYAML's node graph instead of loaded dicts because only nodes remember lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import yaml

from bot.kb.model import (
    DEFAULT_LANGUAGE,
    DONE,
    GUIDE_PREFIX,
    HANDOFF,
    Button,
    Entry,
    Guide,
    KnowledgeBase,
    Link,
    Localized,
    Option,
    Step,
)
from bot.kb.normalize import normalize

# libyaml's parser when PyYAML was built with it (the wheels are): five to ten times faster
# than the pure-Python one on a large KB, with the same nodes and line marks.
COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ENTRY_KEYS = ("id", "question", "alternatives", "answer", "tags", "buttons", "links", "handoff", "tests")
REQUIRED_KEYS = ("id", "question", "alternatives", "answer", "tags")
FILE_KEYS = ("language", "entries", "guides")
GUIDE_KEYS = ("id", "question", "alternatives", "tags", "tests", "intro", "steps", "resolved")
GUIDE_REQUIRED = ("id", "question", "alternatives", "tags", "intro", "steps", "resolved")
STEP_KEYS = ("id", "say", "ask", "answers")
OPTION_KEYS = ("title", "means", "says", "reply", "then")
MEANINGS = ("yes", "no", "unsure")
# WhatsApp shows at most 20 characters of a reply button's title and 10 rows in a list.
MAX_TITLE = 20
MAX_OPTIONS = 10
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class KnowledgeBaseError(Exception):
    """Raised by :func:`load` when a knowledge base has problems; carries all of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def kb_files(directory: Path | str) -> list[Path]:
    root = Path(directory)
    return sorted(p for p in root.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


def load(directory: Path | str) -> KnowledgeBase:
    """Load a knowledge base that must be clean; raise with every problem otherwise."""
    kb, problems = load_dir(directory)
    if problems:
        raise KnowledgeBaseError(problems)
    return kb


def load_or_report(directory: Path | str, stream: TextIO) -> KnowledgeBase | None:
    """For command-line tools: the KB, or ``None`` after writing its problems to ``stream``."""
    kb, problems = load_dir(directory)
    if not problems:
        return kb
    for problem in problems:
        print(problem, file=stream)
    print(f"knowledge base {directory} has problems; fix them first (python -m bot.kb check)", file=stream)
    return None


def load_dir(directory: Path | str, files: dict[str, FileState] | None = None) -> tuple[KnowledgeBase, list[Problem]]:
    """Return the entries that are valid and the problems of the rest, across all files.

    ``files``: what the previous load of this folder saw (the live store keeps it; updated
    here). An unchanged file is not parsed again, and a file that now has problems keeps
    serving its last good version while every other file's edits go live: one editor's
    broken save never holds back another's fix. Its problems are still reported.
    """
    root = Path(directory)
    if not root.is_dir():
        return KnowledgeBase.of([]), [Problem(str(root), 0, "knowledge-base folder not found")]
    paths = kb_files(root)
    if not paths:
        return KnowledgeBase.of([]), [Problem(str(root), 0, "no .yml files in this folder")]
    states = files if files is not None else {}
    for name in set(states) - {str(path) for path in paths}:
        del states[name]  # a deleted file takes its entries with it
    for path in paths:
        stamp = file_stamp(path)
        state = states.get(str(path))
        if state is None or stamp is None or state.stamp != stamp:
            parsed = load_file(path)
            states[str(path)] = state = FileState(stamp, parsed, state.good if state else None)
    # Start from each file's newest version, or its last good one if the newest has problems.
    newest = {name: not state.parsed.problems or state.good is None for name, state in states.items()}
    switched: set[Problem] = set()
    while True:
        entries: list[Entry] = []
        rejected: list[Entry] = []
        chosen_files: list[Parsed] = []
        for name in sorted(states):
            state = states[name]
            chosen = state.parsed if newest[name] else state.good
            entries.extend(chosen.entries)
            rejected.extend(chosen.rejected)
            chosen_files.append(chosen)
        kept, cross = _check_across_files(entries, rejected, chosen_files)
        # A new version that clashes with another file (a duplicate id, a phrasing already
        # used) falls back to its last good version too, and the clash is reported.
        clashing = {
            p.path for p in cross if newest.get(p.path) and states[p.path].good not in (None, states[p.path].parsed)
        }
        if not clashing:
            break
        # Held back: the files whose new entries made the clash (an entry their last good
        # version did not have as it is), else the latest saved; one file per round.
        culprit = max(clashing, key=lambda name: (_introduced(name, states[name], cross), states[name].stamp or (0, 0)))
        switched.update(p for p in cross if p.path == culprit)
        newest[culprit] = False
    problems = {p for state in states.values() for p in state.parsed.problems} | set(cross) | switched
    clean = {name for name, use in newest.items() if use and not states[name].parsed.problems}
    for name in clean - {p.path for p in cross}:
        states[name].good = states[name].parsed
    return KnowledgeBase.of(kept), sorted(problems)


@dataclass
class FileState:
    """One file as the last load saw it: its stamp (mtime, size), the newest parse, and the
    last version that had no problems (served while the newest is broken)."""

    stamp: tuple[int, int] | None
    parsed: Parsed
    good: Parsed | None = None

    @property
    def stale(self) -> bool:
        """Whether the file's last good version is served instead of what is on disk."""
        return self.good is not None and self.good is not self.parsed


def _introduced(name: str, state: FileState, cross: list[Problem]) -> bool:
    """Whether a problem in ``cross`` is at an entry of the file's newest version that its
    last good version did not have, word for word."""
    lines = {p.line for p in cross if p.path == name}
    known = {(e.id, tuple(e.variants())) for e in (state.good.entries if state.good else [])}
    return any(e.line in lines and (e.id, tuple(e.variants())) not in known for e in state.parsed.entries)


def file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


@dataclass
class Parsed:
    """One file's result. ``rejected`` entries had problems; they are not served, but
    still take part in the checks across files, so a duplicate id is never hidden by
    another mistake in the same entry."""

    entries: list[Entry]
    problems: list[Problem]
    rejected: list[Entry] = field(default_factory=list)
    # Texts the reader normalised already (alternatives), so nothing is normalised twice.
    normalized: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    _keys: dict[int, list[str]] = field(default_factory=dict, repr=False, compare=False)
    _owners: tuple[dict[str, tuple[Entry, str]], list[tuple[str, Entry, str]]] | None = field(
        default=None, repr=False, compare=False
    )

    def phrasing_keys(self, entry: Entry) -> list[str]:
        """The normalised phrasings of one of this file's entries, computed once per parse
        (the check across files compares them on every load; most files did not change)."""
        keys = self._keys.get(id(entry))
        if keys is None:
            known = self.normalized
            keys = self._keys[id(entry)] = [known.get(text) or normalize(text) for _, text in entry.variants()]
        return keys

    def owners(self) -> tuple[dict[str, tuple[Entry, str]], list[tuple[str, Entry, str]]]:
        """Each normalised phrasing of the file with the first entry (by line) that has it,
        and the later entries that repeat one: what the check across files needs from
        this file, computed once per parse."""
        if self._owners is None:
            first: dict[str, tuple[Entry, str]] = {}
            repeats: list[tuple[str, Entry, str]] = []
            for entry in sorted([*self.entries, *self.rejected], key=lambda e: e.line):
                for (_, text), key in zip(entry.variants(), self.phrasing_keys(entry), strict=True):
                    owner = first.setdefault(key, (entry, text))
                    if owner[0] is not entry:
                        repeats.append((key, entry, text))
            self._owners = (first, repeats)
        return self._owners


def load_file(path: Path | str) -> Parsed:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Parsed([], [Problem(str(path), 0, f"cannot read file: {exc}")])
    return parse(text, str(path))


def parse(text: str, source: str) -> Parsed:
    """Parse one file's text; ``source`` is the name used in problems."""
    reader = _Reader(source)
    try:
        root = yaml.compose(text, Loader=COMPOSER)
    except yaml.YAMLError as exc:
        line, message = explain_yaml_error(exc, text)
        return Parsed([], [Problem(source, line, f"YAML syntax error: {message}")])
    if root is None:
        return Parsed([], [Problem(source, 1, "file is empty; expected a mapping with an 'entries:' list")])
    entries = reader.file(root)
    return Parsed(entries, reader.problems, reader.rejected, reader.normalized)


def _indent(line: str) -> int:
    """Where the line's key starts (after a list item's '- ')."""
    stripped = line.lstrip(" ")
    return len(line) - len(stripped) + (2 if stripped.startswith("- ") else 0)


def explain_yaml_error(exc: yaml.YAMLError, text: str) -> tuple[int, str]:
    """The line and, in plain words, what is wrong, for the slips editors make most: a
    line indented differently from its neighbours, ': ' inside unquoted text, a tab, a
    quote or bracket never closed, text starting with a character YAML reserves. Anything
    else keeps the parser's own words."""
    problem_mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    mark = problem_mark or context_mark
    line = mark.line + 1 if mark else 0
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None) or ""
    lines = text.splitlines()
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    above = next((lines[n] for n in range(line - 2, -1, -1) if lines[n].strip()), "") if line > 1 else ""
    opened = context_mark.line + 1 if context_mark else line
    if "\t" in here:
        return line, "a tab character; indent with spaces only (two per level)"
    if "mapping values are not allowed" in problem:
        if _indent(here) > _indent(above) and ":" in above and not above.rstrip().endswith(":"):
            return line, (
                f"this line is indented more than line {line - 1}; keys of the same entry must line up "
                "(use the same number of spaces)"
            )
        key = here.strip().removeprefix("- ").split(":", 1)[0]
        return line, (
            f"the text after '{key}:' contains ': ', which YAML reads as a new key; "
            'put the whole text in double quotes ("...")'
        )
    if "quoted scalar" in context:
        return opened, f"a quote opened on line {opened} is never closed; end the text with the same quote"
    if "flow sequence" in context or "flow mapping" in context:
        opener, closer = ("[", "]") if "sequence" in context else ("{", "}")
        return opened, f"'{opener}' on line {opened} is never closed with '{closer}'"
    if "undefined alias" in problem or "alphabetic or numeric character" in problem:
        return line, "text starting with '*' or '&' must be in double quotes"
    if "cannot start any token" in problem:
        return line, "text starting with '@', '`' or '%' must be in double quotes"
    if any(words in problem for words in ("expected '-' indicator", "expected key", "expected <block end>")):
        return line, (
            f"this line does not line up with the lines above it (indentation slip near line {line}); "
            "keys of one entry, and the items of one list, need the same number of spaces"
        )
    return line, problem


class _Reader:
    """Turns one file's node graph into entries, collecting problems as it goes."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self._constructor = yaml.SafeLoader("")
        self.rejected: list[Entry] = []  # kept for cross-file checks (duplicate ids, buttons)
        self.normalized: dict[str, str] = {}  # text -> normalize(text), shared with Parsed

    def problem(self, node: yaml.Node, message: str) -> None:
        self.problems.append(Problem(self.source, node.start_mark.line + 1, message))

    def at(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.source, line, message))

    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what} must be a mapping of 'key: value' lines")
            return None
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node)
            if not isinstance(key, str):
                self.problem(key_node, f"{what}: key {key!r} must be text")
                continue
            if key in out:
                first = out[key][0].start_mark.line + 1
                self.problem(key_node, f"duplicate key '{key}' (first at line {first})")
                continue
            out[key] = (key_node, value_node)
        return out

    def scalar(self, node: yaml.Node) -> object:
        if not isinstance(node, yaml.ScalarNode):
            return node
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError:
            return node.value

    def text(self, node: yaml.Node, what: str) -> str | None:
        value = self.scalar(node)
        if not isinstance(node, yaml.ScalarNode) or not isinstance(value, str):
            hint = " (if you meant the word, put it in quotes)" if isinstance(value, bool) else ""
            self.problem(node, f"{what} must be text{hint}")
            return None
        if not value.strip():
            self.problem(node, f"{what} is empty")
            return None
        return value.strip()

    def unknown_keys(self, fields: dict, allowed: Iterable[str], what: str) -> None:
        allowed = tuple(allowed)
        for key, (key_node, _) in fields.items():
            if key not in allowed:
                self.problem(key_node, f"unknown key '{key}' in {what} (allowed: {', '.join(allowed)})")

    def language_code(self, node: yaml.Node) -> str | None:
        code = self.scalar(node)
        if not isinstance(code, str) or not LANGUAGE_PATTERN.match(code):
            self.problem(node, f"'{code}' is not a language code such as en, ru, ka or pt-BR")
            return None
        return code

    def localized(self, node: yaml.Node, what: str, language: str) -> Localized | None:
        """Read text that is either plain (in the file's language) or ``{lang: text}``."""
        if isinstance(node, yaml.ScalarNode):
            value = self.text(node, what)
            return {language: value} if value is not None else None
        fields = self.mapping(node, f"{what} (text, or a mapping of language to text)")
        if fields is None:
            return None
        out: Localized = {}
        for key, (key_node, value_node) in fields.items():
            code = self.language_code(key_node)
            value = self.text(value_node, f"{what} [{key}]")
            if code and value is not None:
                out[code] = value
        return out or None

    def text_list(self, node: yaml.Node, what: str) -> list[str]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{what} must be a list ('- ...' lines)")
            return []
        out: list[str] = []
        seen: dict[str, int] = {}
        for item in node.value:
            value = self.scalar(item)
            if not isinstance(item, yaml.ScalarNode) or not isinstance(value, str):
                self.problem(item, f"{what}: each item must be text")
            elif not value.strip():
                self.problem(item, f"empty {what[:-1] if what.endswith('s') else what} in {what}")
            else:
                key = self.normalized[value.strip()] = normalize(value)
                if key in seen:
                    self.problem(item, f"{what}: '{value}' repeats line {seen[key]}")
                else:
                    seen[key] = item.start_mark.line + 1
                    out.append(value.strip())
        return out

    def alternatives(self, node: yaml.Node, language: str) -> dict[str, tuple[str, ...]]:
        if isinstance(node, yaml.MappingNode):
            fields = self.mapping(node, "alternatives") or {}
            out = {}
            for _key, (key_node, value_node) in fields.items():
                code = self.language_code(key_node)
                values = self.text_list(value_node, "alternatives")
                if code:
                    out[code] = tuple(values)
            return out
        return {language: tuple(self.text_list(node, "alternatives"))}

    def file(self, root: yaml.Node) -> list[Entry]:
        fields = self.mapping(root, "a knowledge-base file")
        if fields is None:
            return []
        self.unknown_keys(fields, FILE_KEYS, "the file's top level")
        language = DEFAULT_LANGUAGE
        if "language" in fields:
            language = self.language_code(fields["language"][1]) or DEFAULT_LANGUAGE
        if "entries" not in fields and "guides" not in fields:
            self.problem(root, "missing 'entries:' (the list of FAQ entries) or 'guides:' (troubleshooting guides)")
            return []
        entries = []
        for key, read in (("entries", self.entry), ("guides", self.guide)):
            if key not in fields:
                continue
            node = fields[key][1]
            if not isinstance(node, yaml.SequenceNode):
                self.problem(node, f"'{key}' must be a list ('- id: ...')")
                continue
            for item in node.value:
                entry = read(item, language)
                if entry is not None:
                    entries.append(entry)
        return entries

    def head(
        self, node: yaml.Node, kind: str, allowed: tuple[str, ...], required: tuple[str, ...]
    ) -> tuple[dict, str | None, str] | None:
        """What entries and guides share: the fields, a valid id, and the name problems use."""
        article = "an" if kind[0] in "aeiou" else "a"
        fields = self.mapping(node, f"{article} {kind}")
        if fields is None:
            return None
        self.unknown_keys(fields, allowed, f"{article} {kind}")
        item_id = None
        if "id" in fields:
            item_id = self.text(fields["id"][1], "id")
            if item_id and not ID_PATTERN.match(item_id):
                self.problem(fields["id"][1], f"id '{item_id}' may hold only letters, digits, '.', '_' and '-'")
        name = f"{kind} '{item_id}'" if item_id else kind
        for key in required:
            if key not in fields:
                self.problem(node, f"{name}: missing {key}")
        return fields, item_id, name

    def entry(self, node: yaml.Node, language: str) -> Entry | None:
        before = len(self.problems)
        head = self.head(node, "entry", ENTRY_KEYS, REQUIRED_KEYS)
        if head is None:
            return None
        fields, entry_id, name = head
        get = fields.get
        question = self.localized(get("question")[1], "question", language) if get("question") else None
        answer = self.localized(get("answer")[1], "answer", language) if get("answer") else None
        alternatives = self.alternatives(get("alternatives")[1], language) if get("alternatives") else {}
        tags = tuple(self.text_list(get("tags")[1], "tags")) if get("tags") else ()
        buttons = self.buttons(get("buttons")[1], language) if get("buttons") else ()
        links = self.links(get("links")[1], language) if get("links") else ()
        tests = self.alternatives(get("tests")[1], language) if get("tests") else {}
        handoff = False
        if get("handoff"):
            value = self.scalar(get("handoff")[1])
            if not isinstance(value, bool):
                self.problem(get("handoff")[1], "handoff must be true or false")
            handoff = value is True
        if question and answer:
            self.check_languages(node, name, question, answer, alternatives)
        if not entry_id:
            return None
        entry = Entry(
            id=entry_id,
            question=question or {},
            alternatives=alternatives,
            answer=answer or {},
            tags=tags,
            buttons=buttons,
            links=links,
            handoff=handoff,
            tests=tuple(text for texts in tests.values() for text in texts),
            source=self.source,
            line=node.start_mark.line + 1,
        )
        if len(self.problems) > before or not (question and answer):
            self.rejected.append(entry)
            return None
        return entry

    def check_languages(
        self, node: yaml.Node, name: str, question: Localized, answer: Localized, alternatives: dict, what="answer"
    ) -> None:
        for code in question:
            if code not in answer:
                self.problem(node, f"{name}: missing {what} in language '{code}'")
            if not alternatives.get(code):
                self.problem(node, f"{name}: needs at least one alternative in language '{code}'")
        for code in set(answer) | set(alternatives):
            if code not in question:
                self.problem(node, f"{name}: has text in language '{code}' but no question in it")

    def guide(self, node: yaml.Node, language: str) -> Entry | None:
        """A troubleshooting guide: an entry's id and phrasings, then ordered steps."""
        before = len(self.problems)
        head = self.head(node, "guide", GUIDE_KEYS, GUIDE_REQUIRED)
        if head is None:
            return None
        fields, guide_id, name = head
        get = fields.get
        question = self.localized(get("question")[1], "question", language) if get("question") else None
        alternatives = self.alternatives(get("alternatives")[1], language) if get("alternatives") else {}
        tags = tuple(self.text_list(get("tags")[1], "tags")) if get("tags") else ()
        tests = self.alternatives(get("tests")[1], language) if get("tests") else {}
        intro = self.localized(get("intro")[1], "intro", language) if get("intro") else None
        resolved = self.localized(get("resolved")[1], "resolved", language) if get("resolved") else None
        steps = self.steps(get("steps")[1], language, name) if get("steps") else ()
        if question and intro and resolved and steps:
            self.check_languages(node, name, question, intro, alternatives, what="intro")
            self.check_guide(node, name, tuple(question), intro, resolved, steps)
        if not guide_id:
            return None
        guide = Guide(intro=intro or {}, resolved=resolved or {}, steps=steps)
        entry = Entry(
            id=guide_id,
            question=question or {},
            alternatives=alternatives,
            answer=guide_text(guide),
            tags=tags,
            tests=tuple(text for texts in tests.values() for text in texts),
            guide=guide,
            source=self.source,
            line=node.start_mark.line + 1,
        )
        if len(self.problems) > before or not (question and intro and resolved and steps):
            self.rejected.append(entry)
            return None
        return entry

    def steps(self, node: yaml.Node, language: str, name: str) -> tuple[Step, ...]:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.problem(node, f"{name}: steps must be a list of at least one step ('- id: ...')")
            return ()
        out: list[Step] = []
        seen: dict[str, int] = {}
        for item in node.value:
            fields = self.mapping(item, "a step")
            if fields is None:
                continue
            self.unknown_keys(fields, STEP_KEYS, "a step")
            step_id = self.text(fields["id"][1], "step id") if "id" in fields else None
            if "id" not in fields:
                self.problem(item, f"{name}: a step is missing its id")
            elif step_id and (not ID_PATTERN.match(step_id) or step_id in (DONE, HANDOFF)):
                self.problem(
                    fields["id"][1],
                    f"step id '{step_id}' may hold only letters, digits, '.', '_' and '-', "
                    f"and cannot be '{DONE}' or '{HANDOFF}'",
                )
                step_id = None
            elif step_id in seen:
                self.problem(fields["id"][1], f"{name}: step id '{step_id}' repeats line {seen[step_id]}")
                step_id = None
            if step_id:
                seen[step_id] = item.start_mark.line + 1
            if "ask" not in fields:
                self.problem(item, f"{name}: step '{step_id or '?'}' is missing 'ask' (the check the customer answers)")
            if "answers" not in fields:
                self.problem(item, f"{name}: step '{step_id or '?'}' is missing 'answers'")
            say = self.localized(fields["say"][1], "say", language) if "say" in fields else None
            ask = self.localized(fields["ask"][1], "ask", language) if "ask" in fields else None
            options = self.options(fields["answers"][1], language) if "answers" in fields else ()
            if step_id and ask and options:
                out.append(Step(id=step_id, ask=ask, options=options, say=say, line=item.start_mark.line + 1))
        return tuple(out)

    def options(self, node: yaml.Node, language: str) -> tuple[Option, ...]:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.problem(node, "answers must be a list of at least one answer ('- title: ...')")
            return ()
        if len(node.value) > MAX_OPTIONS:
            self.problem(node, f"a step can offer at most {MAX_OPTIONS} answers (WhatsApp's limit)")
        out: list[Option] = []
        meanings: dict[str, int] = {}
        for item in node.value:
            fields = self.mapping(item, "an answer")
            if fields is None:
                continue
            self.unknown_keys(fields, OPTION_KEYS, "an answer")
            for key in ("title", "then"):
                if key not in fields:
                    self.problem(item, f"an answer is missing '{key}'")
            title = self.localized(fields["title"][1], "answer title", language) if "title" in fields else None
            for code, text in (title or {}).items():
                if len(text) > MAX_TITLE:
                    self.problem(
                        fields["title"][1],
                        f"answer title '{text}' [{code}] is {len(text)} characters; "
                        f"WhatsApp shows at most {MAX_TITLE} on a button",
                    )
            then = self.text(fields["then"][1], "then") if "then" in fields else None
            if then and not (then in (DONE, HANDOFF) or ID_PATTERN.match(then.removeprefix(GUIDE_PREFIX))):
                self.problem(
                    fields["then"][1],
                    f"then '{then}' must be a step id, '{DONE}', '{HANDOFF}' or '{GUIDE_PREFIX}<guide id>'",
                )
                then = None
            means = None
            if "means" in fields:
                node_means = fields["means"][1]
                # Read as written: YAML 1.1 would turn a bare yes/no into true/false.
                means = node_means.value.strip().lower() if isinstance(node_means, yaml.ScalarNode) else None
                if means not in MEANINGS:
                    self.problem(node_means, f"means '{means}' must be one of {', '.join(MEANINGS)}")
                    means = None
                elif means in meanings:
                    self.problem(node_means, f"two answers of one step both mean '{means}'")
                else:
                    meanings[means] = item.start_mark.line + 1
            reply = self.localized(fields["reply"][1], "reply", language) if "reply" in fields else None
            says = self.alternatives(fields["says"][1], language) if "says" in fields else {}
            if title and then:
                out.append(Option(title=title, then=then, means=means, reply=reply, says=says))
        return tuple(out)

    def check_guide(
        self,
        node: yaml.Node,
        name: str,
        languages: tuple[str, ...],
        intro: Localized,
        resolved: Localized,
        steps: tuple[Step, ...],
    ) -> None:
        """Missing translations, answers leading nowhere, steps nobody reaches, loops with no
        way out: what would strand a customer half-way through a guide."""
        line = node.start_mark.line + 1
        texts: list[tuple[int, str, Localized | None]] = [(line, "resolved", resolved)]
        for step in steps:
            texts += [(step.line, f"step '{step.id}' say", step.say), (step.line, f"step '{step.id}' ask", step.ask)]
            for number, option in enumerate(step.options, 1):
                texts += [
                    (step.line, f"step '{step.id}' answer {number} title", option.title),
                    (step.line, f"step '{step.id}' answer {number} reply", option.reply),
                ]
        for at, what, text in texts:
            if text is None:
                continue
            missing = [code for code in languages if code not in text]
            if missing:
                self.at(at, f"{name}: {what} has no translation in {', '.join(missing)}")
        ids = {step.id for step in steps}
        by_id = {step.id: step for step in steps}
        for step in steps:
            for option in step.options:
                if not _is_exit(option.then) and option.then not in ids:
                    self.at(step.line, f"{name}: step '{step.id}': answer leads to unknown step '{option.then}'")
        reachable, todo = set(), [steps[0].id]
        while todo:
            current = todo.pop()
            if current in reachable or current not in by_id:
                continue
            reachable.add(current)
            todo.extend(option.then for option in by_id[current].options)
        for step in steps:
            if step.id not in reachable:
                self.at(step.line, f"{name}: step '{step.id}' is never reached from the first step")
        exits = {step.id for step in steps if any(_is_exit(option.then) for option in step.options)}
        changed = True
        while changed:
            before = len(exits)
            exits |= {step.id for step in steps if any(option.then in exits for option in step.options)}
            changed = len(exits) != before
        for step in steps:
            if step.id in reachable and step.id not in exits:
                self.at(
                    step.line,
                    f"{name}: step '{step.id}' loops without an exit: no answer from it ever "
                    f"leads to '{DONE}', '{HANDOFF}' or another guide",
                )

    def buttons(self, node: yaml.Node, language: str) -> tuple[Button, ...]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, "buttons must be a list")
            return ()
        out = []
        for item in node.value:
            fields = self.mapping(item, "a button")
            if fields is None:
                continue
            self.unknown_keys(fields, ("title", "entry", "text"), "a button")
            title = self.localized(fields["title"][1], "button title", language) if "title" in fields else None
            if "title" not in fields:
                self.problem(item, "button: missing title")
            target = [k for k in ("entry", "text") if k in fields]
            if len(target) != 1:
                self.problem(item, "button needs exactly one of 'entry' (an entry id) or 'text'")
                continue
            value = self.text(fields[target[0]][1], f"button {target[0]}")
            if title and value:
                out.append(Button(title=title, **{target[0]: value}))
        return tuple(out)

    def links(self, node: yaml.Node, language: str) -> tuple[Link, ...]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, "links must be a list")
            return ()
        out = []
        for item in node.value:
            fields = self.mapping(item, "a link")
            if fields is None:
                continue
            self.unknown_keys(fields, ("title", "url"), "a link")
            if "title" not in fields or "url" not in fields:
                self.problem(item, "link needs both title and url")
                continue
            title = self.localized(fields["title"][1], "link title", language)
            url = self.text(fields["url"][1], "link url")
            if url and not re.match(r"^https?://\S+$", url):
                self.problem(fields["url"][1], f"link url '{url}' must start with http:// or https://")
                continue
            if title and url:
                out.append(Link(title=title, url=url))
        return tuple(out)


def _is_exit(then: str) -> bool:
    return then in (DONE, HANDOFF) or then.startswith(GUIDE_PREFIX)


def guide_text(guide: Guide) -> Localized:
    """The guide's words in each language, as one passage: what the matcher compares a
    question with, the way it reads an entry's answer."""
    out: Localized = {}
    for code, intro in guide.intro.items():
        lines = [intro]
        for step in guide.steps:
            lines += [text[code] for text in (step.say, step.ask) if text and code in text]
        out[code] = "\n".join(lines)
    return out


def _check_across_files(
    entries: list[Entry], rejected: list[Entry], files: list[Parsed] | None = None
) -> tuple[list[Entry], list[Problem]]:
    """Find what no single file can see: duplicate ids, shared phrasings, dangling buttons.

    ``files``: each file's parse, in file order (``load_dir``); the phrasings are compared
    through each file's own table of them, a set operation per file rather than a loop
    over every phrasing of the knowledge base, since most loads follow a one-file edit.
    """
    problems: list[Problem] = []
    first_by_id: dict[str, Entry] = {}
    kept: list[Entry] = []
    rejected_ids = {id(e) for e in rejected}
    everything = sorted([*entries, *rejected], key=lambda e: (e.source, e.line))
    for entry in everything:
        first = first_by_id.get(entry.id)
        if first is not None:
            problems.append(
                Problem(entry.source, entry.line, f"duplicate id '{entry.id}' (also at {first.source}:{first.line})")
            )
            problems.append(
                Problem(first.source, first.line, f"duplicate id '{entry.id}' (also at {entry.source}:{entry.line})")
            )
            if first in kept:
                kept.remove(first)
            continue
        first_by_id[entry.id] = entry
        if id(entry) not in rejected_ids:
            kept.append(entry)
    if files is None:  # entries without their files (callers outside load_dir)
        by_source: dict[str, Parsed] = {}
        for entry in everything:
            by_source.setdefault(entry.source, Parsed([], [])).entries.append(entry)
        files = [by_source[name] for name in sorted(by_source)]
    owner: dict[str, tuple[Entry, str]] = {}
    for parsed in sorted(files, key=lambda f: min((e.source for e in (*f.entries, *f.rejected)), default="")):
        first, repeats = parsed.owners()
        clashes = owner.keys() & first.keys()
        earlier = {key: owner[key] for key in clashes}
        owner.update(first)
        owner.update(earlier)  # the first file to use a phrasing keeps it
        later = [(key, *first[key]) for key in clashes] + repeats
        for key, entry, text in later:
            other = owner[key][0]
            if other is entry:
                continue
            problems.append(
                Problem(
                    entry.source,
                    entry.line,
                    f"entry '{entry.id}': phrasing '{text}' is also used by entry '{other.id}' "
                    f"({other.source}:{other.line}); the matcher could not tell them apart",
                )
            )
    for entry in everything:
        for step in entry.guide.steps if entry.guide else ():
            for option in step.options:
                target = option.then.removeprefix(GUIDE_PREFIX)
                if option.then.startswith(GUIDE_PREFIX) and (
                    target not in first_by_id or first_by_id[target].guide is None
                ):
                    problems.append(
                        Problem(
                            entry.source,
                            step.line,
                            f"guide '{entry.id}': step '{step.id}' leads to unknown guide '{target}'",
                        )
                    )
        for button in entry.buttons:
            if button.entry and button.entry not in first_by_id:
                problems.append(
                    Problem(
                        entry.source, entry.line, f"entry '{entry.id}': button points to unknown entry '{button.entry}'"
                    )
                )
    return kept, problems
