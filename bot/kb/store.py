"""Keeps the action server's knowledge base current while editors change the files.

An editor's fix is live within a second or two of saving, without a restart; a broken
save never takes the bot down: the problems are logged as ``path:line: message`` and the
last good knowledge base keeps answering.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from bot.kb.loader import Problem, kb_files, load_dir
from bot.kb.matcher import Matcher, MatchSettings
from bot.kb.model import KnowledgeBase

log = logging.getLogger(__name__)


class KnowledgeBaseStore:
    def __init__(self, directory: Path, settings: MatchSettings, check_every: float = 1.0) -> None:
        self.directory = Path(directory)
        self.settings = settings
        self.check_every = check_every
        self.problems: list[Problem] = []
        self._lock = threading.Lock()
        self._checked_at = 0.0
        self._fingerprint: tuple = ()
        self._matcher: Matcher | None = None

    def _files_fingerprint(self) -> tuple:
        out = []
        for path in kb_files(self.directory) if self.directory.is_dir() else []:
            try:
                stat = path.stat()
            except OSError:
                continue
            out.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(out)

    def matcher(self) -> Matcher:
        """The matcher over the newest good knowledge base (re-checked at most once a second)."""
        with self._lock:
            now = time.monotonic()
            if self._matcher is None or now - self._checked_at >= self.check_every:
                self._checked_at = now
                fingerprint = self._files_fingerprint()
                if self._matcher is None or fingerprint != self._fingerprint:
                    self._fingerprint = fingerprint
                    self._reload()
            assert self._matcher is not None
            return self._matcher

    @property
    def kb(self) -> KnowledgeBase:
        return self.matcher().kb

    def _reload(self) -> None:
        kb, problems = load_dir(self.directory)
        self.problems = problems
        for problem in problems:
            log.error("knowledge base: %s", problem)
        if problems and self._matcher is not None:
            log.error("knowledge base NOT reloaded (%d problems); still serving the last good one", len(problems))
            return
        if problems:
            log.error("serving the %d valid entries until the problems are fixed", len(kb))
        else:
            log.info("knowledge base loaded: %d entries from %s", len(kb), self.directory)
        self._matcher = Matcher(kb, self.settings)
