"""Start, health-check and stop the stack's processes; shared by ``make run`` and the tests.

Each child runs in its own session, so Ctrl-C reaches only the supervisor, which then
stops the children in order (Rasa before the action server before Redis, so nothing is
left writing to a stopped store) and escalates to SIGKILL on the whole process group if
one hangs. Children also get PR_SET_PDEATHSIG, so even a supervisor killed with -9
leaves no orphans behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.settings import ROOT, Settings

PR_SET_PDEATHSIG = 1
# Rasa reports usage and errors to its servers by default; a support bot keeps customer
# conversations on its own machines (and this network has no route out anyway).
QUIET_RASA = {"RASA_TELEMETRY_ENABLED": "false"}


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_ok(url: str, expect: Callable[[bytes], bool] | None = None, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
            return response.status == 200 and (expect is None or expect(body))
    except (urllib.error.URLError, OSError, ValueError):
        return False


def redis_ping(host: str, port: int, password: str = "", timeout: float = 1.0) -> bool:
    """A raw PING, so the supervisor needs nothing but the standard library."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if password:
                sock.sendall(f"AUTH {password}\r\n".encode())
                sock.recv(64)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class StartError(RuntimeError):
    """A process did not come up; the message says which and shows its last log lines."""


@dataclass
class Process:
    name: str
    command: list[str]
    log_file: Path
    healthy: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    stop_signal: int = signal.SIGTERM
    popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab")
        self.popen = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise StartError(
                    f"{self.name} exited during start-up; last lines of {self.log_file}:\n{self.log_tail()}"
                )
            if self.healthy():
                return
            time.sleep(0.3)
        raise StartError(
            f"{self.name} not healthy after {timeout:.0f} s; last lines of {self.log_file}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, self.stop_signal)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"{self.name} did not stop within {timeout:.0f} s; killing it", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


def redis_process(port: int, data_dir: Path, log_dir: Path) -> Process:
    """A local Redis with AOF on: every write is on disk within a second, and on stop."""
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        "redis-server",
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "60 1",
        "--daemonize", "no",
        "--protected-mode", "yes",
    ]  # fmt: skip
    return Process("redis", command, log_dir / "redis.log", lambda: redis_ping("127.0.0.1", port))


def service_env(settings: Settings) -> dict[str, str]:
    """The settings a child process must share with its parent (it re-reads them from env)."""
    return {
        "REDIS_URL": settings.redis.url,
        "RASA_PORT": str(settings.rasa_port),
        "ACTION_PORT": str(settings.action_port),
        "HANDOFF_PORT": str(settings.handoff_port),
        "KB_DIR": str(settings.kb_dir),
        "BOT_VAR_DIR": str(settings.var_dir),
        "BUSINESS_HOURS_FILE": settings.business_hours_file,
        "PYTHONUNBUFFERED": "1",
        **QUIET_RASA,
    }


def action_server_process(settings: Settings, log_dir: Path) -> Process:
    port = settings.action_port
    env = service_env(settings)
    command = [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)]
    return Process(
        "action server", command, log_dir / "actions.log", lambda: http_ok(f"http://127.0.0.1:{port}/health"), env
    )


def rasa_env(settings: Settings) -> dict[str, str]:
    """The variables ``endpoints.yml`` reads: where Redis and the action server are."""
    redis = settings.redis
    return {
        "REDIS_HOST": redis.host,
        "REDIS_PORT": str(redis.port),
        "REDIS_DB": str(redis.db),
        "REDIS_PASSWORD": redis.password,
        "ACTION_ENDPOINT_URL": settings.action_url,
        **(settings.channels or {}),
        **service_env(settings),
    }


def rasa_process(settings: Settings, model: Path, token: str, log_dir: Path) -> Process:
    host, port = settings.rasa_host, settings.rasa_port
    command = [
        sys.executable, "-m", "rasa", "run",
        "--model", str(model),
        "--endpoints", str(ROOT / "endpoints.yml"),
        "--credentials", str(ROOT / "credentials.yml"),
        "--interface", host,
        "--port", str(port),
        "--enable-api",
        "--auth-token", token,
        "--cors", "*",
    ]  # fmt: skip
    probe_host = "127.0.0.1" if host in ("0.0.0.0", "") else host

    def loaded() -> bool:
        url = f"http://{probe_host}:{port}/status?token={token}"
        return http_ok(url, lambda body: bool(json.loads(body).get("model_id")))

    return Process("rasa", command, log_dir / "rasa.log", loaded, rasa_env(settings), stop_signal=signal.SIGINT)


def handoff_process(settings: Settings, token: str, log_dir: Path) -> Process:
    port = settings.handoff_port
    env = {**service_env(settings), "RASA_TOKEN": token}
    command = [sys.executable, "-m", "handoff"]
    return Process(
        "handoff service", command, log_dir / "handoff.log", lambda: http_ok(f"http://127.0.0.1:{port}/health"), env
    )
