"""Keep the stack up: start the children in order, restart one that dies, stop all in reverse.

A crashed child is restarted after a delay that doubles with every crash (1 s, 2 s, 4 s ...
at most 30 s), so a child that cannot come up does not spin, and the delay falls back to
1 s once the child has stayed healthy for a minute, so a crash a day is mended at once.
The other children keep running throughout; Redis comes back on its port and data folder,
so trackers survive. A restart never blocks the loop: while Rasa loads its model again,
the others are still watched. Each crash is printed with the last lines of the child's log.

Start-up is stricter than a restart: a child that cannot start the first time stops
``make run`` with its log, since that is a configuration problem, not bad luck.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from bot.processes import Process, StartError


@dataclass(frozen=True)
class RestartPolicy:
    first_delay: float = 1.0
    max_delay: float = 30.0
    # Healthy this long after a (re)start, and the next crash waits ``first_delay`` again.
    reset_after: float = 60.0
    # A restarted child that is not healthy within this long is killed and counts as a crash.
    start_timeout: float = 240.0

    def after(self, delay: float) -> float:
        return min(delay * 2, self.max_delay)


class State(Enum):
    STARTING = "starting"
    HEALTHY = "healthy"
    WAITING = "waiting to restart"
    STOPPED = "stopped"


@dataclass
class Child:
    """One supervised process and its restart history (read by the tests and the log)."""

    process: Process
    next_delay: float
    state: State = State.STOPPED
    since: float = 0.0
    restart_at: float = 0.0
    restarts: int = 0
    delays: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.process.name


def _how_it_ended(returncode: int | None) -> str:
    if returncode is None:
        return "stopped answering"
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


def _indent(text: str) -> str:
    return "\n".join(f"    | {line}" for line in text.splitlines()) or "    | (log is empty)"


class Supervisor:
    """Drive with :meth:`start`, then :meth:`poll` (or :meth:`run`), then :meth:`stop`;
    :meth:`serve` does all three the way ``make run`` needs, Ctrl-C included."""

    def __init__(
        self,
        processes: Sequence[Process],
        policy: RestartPolicy | None = None,
        out: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or RestartPolicy()
        self.children = [Child(process, self.policy.first_delay) for process in processes]
        self._out = out or (lambda line: print(line, flush=True))
        self._clock = clock
        self._started: list[Child] = []

    def child(self, name: str) -> Child:
        return next(child for child in self.children if child.name == name)

    def start(self, timeout: float) -> None:
        """Start each child and wait until it is healthy before the next (Redis first)."""
        for child in self.children:
            self._out(f"starting {child.name} ...")
            child.process.start()
            self._started.append(child)
            self._out(f"  {child.name} started (pid {child.process.pid})")
            child.process.wait_healthy(timeout)
            child.state, child.since = State.HEALTHY, self._clock()

    def poll(self) -> None:
        """One look at every child: notice a crash, restart when its delay is over,
        notice a restarted child is healthy, forget the backoff of a long-healthy one."""
        for child in self._started:
            now = self._clock()
            process = child.process
            if child.state in (State.STARTING, State.HEALTHY) and not process.running():
                self._clear_group(process)
                self._crashed(child, now)
            elif child.state is State.WAITING and now >= child.restart_at:
                self._restart(child, now)
            elif child.state is State.STARTING:
                if process.healthy():
                    self._out(f"{child.name} is healthy again (pid {process.pid}, {now - child.since:.1f} s)")
                    child.state, child.since = State.HEALTHY, now
                elif now - child.since > self.policy.start_timeout:
                    self._out(f"{child.name} not healthy {self.policy.start_timeout:.0f} s after restart; killing it")
                    process.stop(timeout=10)
                    self._crashed(child, now, "never became healthy")
            elif child.state is State.HEALTHY and now - child.since >= self.policy.reset_after:
                child.next_delay = self.policy.first_delay

    def run(self, interval: float = 0.5) -> None:
        """Poll until interrupted (KeyboardInterrupt: Ctrl-C, or SIGTERM via :meth:`serve`)."""
        while True:
            self.poll()
            time.sleep(interval)

    def stop(self) -> None:
        """Stop every started child, last started first (Redis last, so it flushes)."""
        for child in reversed(self._started):
            child.process.stop()
            child.state = State.STOPPED
            self._out(f"  {child.name} stopped (pid {child.process.pid})")
        self._started.clear()

    def serve(self, on_ready: Callable[[], None], start_timeout: float, interval: float = 0.5) -> int:
        """Start, call ``on_ready``, keep everything up until Ctrl-C or SIGTERM, stop.

        Returns the exit code: 0 after Ctrl-C, 1 when a child could not start.
        """

        def interrupt(_signum: int, _frame: object) -> None:
            raise KeyboardInterrupt

        # Both set explicitly: a shell that starts us in the background ignores SIGINT,
        # and Python then would never raise KeyboardInterrupt for it.
        signal.signal(signal.SIGINT, interrupt)
        signal.signal(signal.SIGTERM, interrupt)
        try:
            self.start(start_timeout)
            on_ready()
            self.run(interval)
        except KeyboardInterrupt:
            return 0
        except StartError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 1
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if self._started:
                self._out("\nstopping ...")
            self.stop()
        return 0  # pragma: no cover - run() only ends by an exception

    def _crashed(self, child: Child, now: float, how: str | None = None) -> None:
        process = child.process
        popen = process.popen
        delay = child.next_delay
        child.delays.append(delay)
        child.next_delay = self.policy.after(delay)
        child.state, child.restart_at = State.WAITING, now + delay
        what = how or _how_it_ended(popen.returncode if popen else None)
        self._out(
            f"{child.name} (pid {process.pid}) {what}; restarting in {delay:g} s. "
            f"Last lines of {process.log_file}:\n{_indent(process.log_tail())}"
        )

    @staticmethod
    def _clear_group(process: Process) -> None:
        """Kill what a dead child left in its process group (workers holding its port), so
        the restarted child can bind again. Called right after the death is noticed."""
        if process.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.popen.pid, signal.SIGKILL)

    def _restart(self, child: Child, now: float) -> None:
        try:
            child.process.start()
        except OSError as exc:
            self._out(f"{child.name} could not be restarted: {exc}")
            self._crashed(child, now, "could not be started")
            return
        child.restarts += 1
        child.state, child.since = State.STARTING, now
        self._out(f"{child.name} restarted as pid {child.process.pid} (restart {child.restarts})")
