"""Keeps the action server's knowledge base current while editors change the files.

An editor's fix is live within a second of saving, without a restart; a broken save
never takes the bot down and never holds back another file: the problems are logged as
``path:line: message`` and that file's last good version keeps answering while every
other file's edits go live (``load_dir`` with the store's per-file state; unchanged files
are not even parsed again).

A watcher thread checks the files four times a second and builds the new matcher in the
background while the old one keeps answering, so no customer's request waits for a
rebuild. The rebuild starts from the previous matcher and embeds and analyses only the
changed entries (well under a second at 5,000 entries; docs/benchmarks.md). The encoder's
vectors are saved (``save_vectors``) after each build, so a restart embeds only what
changed since (a cold build of a large KB takes minutes).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from bot.kb.loader import FileState, Problem, kb_files, load_dir
from bot.kb.matcher import Matcher, MatchSettings
from bot.kb.model import KnowledgeBase

log = logging.getLogger(__name__)


class KnowledgeBaseStore:
    def __init__(
        self,
        directory: Path,
        settings: MatchSettings,
        check_every: float = 0.25,
        background: bool = True,
        save_vectors: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.settings = settings
        self.check_every = check_every
        self.background = background
        self.save_vectors = save_vectors
        self.problems: list[Problem] = []
        self._lock = threading.Lock()
        self._checked_at = 0.0
        self._fingerprint: tuple = ()
        self._matcher: Matcher | None = None
        self._building: threading.Thread | None = None
        self._files: dict[str, FileState] = {}
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()

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
        """The matcher over the newest good knowledge base (files re-checked at most once a
        second); while a changed KB is being built, the previous one answers."""
        with self._lock:
            first = self._matcher is None
            now = time.monotonic()
            if first or now - self._checked_at >= self.check_every:
                self._checked_at = now
                fingerprint = self._files_fingerprint()
                building = self._building is not None and self._building.is_alive()
                if first or (fingerprint != self._fingerprint and not building):
                    self._fingerprint = fingerprint
                    if first or not self.background:
                        self._reload()
                    else:
                        self._building = threading.Thread(target=self._reload, name="kb-reload", daemon=True)
                        self._building.start()
            assert self._matcher is not None
            return self._matcher

    def watch(self) -> None:
        """Check the files every ``check_every`` seconds on a thread of our own, so an edit
        is live before the next customer asks, not built while that customer gets the old
        answer (in a process forked after this call, the next call starts it again)."""
        with self._lock:
            if self._watcher is not None and self._watcher.is_alive():
                return
            self._watcher = threading.Thread(target=self._watch, name="kb-watch", daemon=True)
            self._watcher.start()

    def stop(self) -> None:
        """Stop the watcher (tests and benchmarks that remove the folder afterwards)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()

    def _watch(self) -> None:
        while not self._stop.wait(max(self.check_every, 0.1)):
            try:
                self.matcher()
            except Exception:  # never let the watcher die on an unexpected error
                log.exception("knowledge base check failed")

    def wait(self, timeout: float | None = None) -> Matcher:
        """Check the files now and wait for any rebuild to finish (tests, start-up)."""
        self._checked_at = 0.0
        self.matcher()
        building = self._building
        if building is not None:
            building.join(timeout)
        return self.matcher()

    def _save_vectors(self, computed_before: int) -> None:
        from bot.nlu.encoder import get_encoder, save_vectors

        if self.save_vectors and get_encoder().computed > computed_before:
            try:
                save_vectors()
            except OSError as exc:
                log.warning("could not save the sentence vectors: %s", exc)

    @property
    def kb(self) -> KnowledgeBase:
        return self.matcher().kb

    def _reload(self) -> None:
        try:
            self._build()
        except Exception:  # a background build must never take the serving matcher down
            if self._matcher is None:
                raise
            log.exception("knowledge base NOT reloaded; still serving the last good one")

    def _build(self) -> None:
        from bot.nlu.encoder import get_encoder

        started = time.monotonic()
        computed_before = get_encoder().computed
        kb, problems = load_dir(self.directory, self._files)
        self.problems = problems
        for problem in problems:
            log.error("knowledge base: %s", problem)
        for name, state in sorted(self._files.items()):
            if state.stale:
                log.error("knowledge base: %s has problems; still serving its last good version", name)
        if problems and not any(state.stale for state in self._files.values()):
            log.error("serving the %d valid entries until the problems are fixed", len(kb))
        matcher = Matcher(kb, self.settings, previous=self._matcher)
        self._matcher = matcher
        elapsed = time.monotonic() - started
        log.info("knowledge base loaded: %d entries from %s in %.2f s", len(kb), self.directory, elapsed)
        self._save_vectors(computed_before)
