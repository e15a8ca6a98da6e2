"""Write an approved change into the knowledge-base files the way an editor would: the
file keeps its comments, order and layout (ruamel.yaml's round trip), and the change is
refused unless the whole knowledge base still loads without a new problem.

Used by the editors' page: an agent's answer becomes a phrasing of an existing entry or a
new entry only when an editor approves it, so nothing reaches customers unreviewed. The
running bot picks the saved file up like any editor's save (``KnowledgeBaseStore``).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from bot.kb.loader import ID_PATTERN, Problem, load_dir
from bot.kb.model import KnowledgeBase

MAX_TEXT = 2000


class EditError(ValueError):
    """The change was not made; ``problems`` say why, as ``kb check`` would."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        self.problems = problems or []
        super().__init__(message + "".join(f"\n{p}" for p in self.problems))


def _yaml() -> YAML:
    yaml = YAML()  # round trip: comments, order, quotes and flow style survive
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap an editor's long lines
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _clean(text: str, what: str) -> str:
    text = " ".join(str(text or "").split()) if what != "answer" else str(text or "").strip()
    if not text:
        raise EditError(f"the {what} is empty")
    if len(text) > MAX_TEXT:
        raise EditError(f"the {what} is longer than {MAX_TEXT} characters")
    return text


def _find(document: CommentedMap, entry_id: str) -> CommentedMap | None:
    for key in ("entries", "guides"):
        for item in document.get(key) or []:
            if isinstance(item, CommentedMap) and str(item.get("id")) == entry_id:
                return item
    return None


def _save_checked(directory: Path, path: Path, document: CommentedMap, before: list[Problem]) -> None:
    """Write ``document`` to ``path`` only if the knowledge base has no problem it did not
    have before; checked on a copy of the folder, then swapped in atomically."""
    buffer = io.StringIO()
    _yaml().dump(document, buffer)
    text = buffer.getvalue()
    with tempfile.TemporaryDirectory(prefix="kb-edit-") as scratch:
        copy = Path(scratch) / "kb"
        shutil.copytree(directory, copy)
        (copy / path.relative_to(directory)).write_text(text, encoding="utf-8")
        _, problems = load_dir(copy)
    known = {(Path(p.path).name, p.message) for p in before}
    new = [p for p in problems if (Path(p.path).name, p.message) not in known]
    if new:
        shown = [Problem(str(path), p.line, p.message) for p in new]
        raise EditError("the change would break the knowledge base; nothing was written", shown)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _load(path: Path) -> CommentedMap:
    document = _yaml().load(path.read_text(encoding="utf-8"))
    if not isinstance(document, CommentedMap):
        raise EditError(f"{path} is not a knowledge-base file")
    return document


def add_phrasing(directory: Path, kb: KnowledgeBase, entry_id: str, text: str, language: str) -> Path:
    """Add ``text`` to the alternatives of ``entry_id`` in ``language``; return the file."""
    directory = Path(directory)
    entry = kb.get(entry_id)
    if entry is None:
        raise EditError(f"no entry '{entry_id}'")
    text = _clean(text, "phrasing")
    path = Path(entry.source)
    _, before = load_dir(directory)
    document = _load(path)
    item = _find(document, entry_id)
    if item is None:
        raise EditError(f"entry '{entry_id}' is not in {path} any more; reload and try again")
    file_language = str(document.get("language") or "en")
    alternatives = item.get("alternatives")
    if isinstance(alternatives, CommentedMap):
        if language not in alternatives:
            if language not in (entry.question or {}):
                raise EditError(f"entry '{entry_id}' has no question in '{language}'; translate it first")
            alternatives[language] = CommentedSeq()
        alternatives[language].append(text)
    elif isinstance(alternatives, list) and language == file_language:
        alternatives.append(text)
    else:
        raise EditError(f"entry '{entry_id}' is in '{file_language}' only; add a '{language}' translation first")
    _save_checked(directory, path, document, before)
    return path


def add_entry(
    directory: Path,
    kb: KnowledgeBase,
    entry_id: str,
    question: str,
    answer: str,
    language: str,
    tags: list[str],
    near: str | None = None,
) -> Path:
    """Append a new entry (question, the question again as its first alternative, answer,
    tags) to the file of entry ``near`` (the topic it is closest to), else ``suggested.yml``."""
    directory = Path(directory)
    if not ID_PATTERN.match(entry_id or ""):
        raise EditError(f"id '{entry_id}' may hold only letters, digits, '.', '_' and '-'")
    if kb.get(entry_id) is not None:
        raise EditError(f"an entry '{entry_id}' exists already")
    question, answer = _clean(question, "question"), _clean(answer, "answer")
    tags = [t for t in (re.sub(r"[^\w.-]", "", str(tag)) for tag in tags) if t] or ["suggested"]
    neighbour = kb.get(near) if near else None
    path = Path(neighbour.source) if neighbour else directory / "suggested.yml"
    _, before = load_dir(directory)
    if path.exists():
        document = _load(path)
    else:
        document = CommentedMap()
        document.yaml_set_start_comment("Entries written from agents' answers, approved on the editors' page.")
        document["entries"] = CommentedSeq()
    file_language = str(document.get("language") or "en")
    entry = CommentedMap()
    entry["id"] = entry_id
    if language == file_language:
        entry["question"] = question
        entry["alternatives"] = CommentedSeq([question])
        entry["answer"] = answer
    else:
        entry["question"] = CommentedMap({language: question})
        entry["alternatives"] = CommentedMap({language: CommentedSeq([question])})
        entry["answer"] = CommentedMap({language: answer})
    entry["tags"] = CommentedSeq(tags)
    entry["tags"].fa.set_flow_style()
    entries = document.get("entries")
    if entries is None:
        document["entries"] = entries = CommentedSeq()
    entries.append(entry)
    _save_checked(directory, path, document, before)
    return path
