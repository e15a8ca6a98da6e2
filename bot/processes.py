"""Start, health-check and stop the stack's processes; shared by ``make run`` and the tests.

Each child runs in its own session, so Ctrl-C reaches only the supervisor, which then
stops the children in order (Rasa before the action server before Redis, so nothing is
left writing to a stopped store) and escalates to SIGKILL on the whole process group if
one hangs. Children also get PR_SET_PDEATHSIG, so even a supervisor killed with -9
leaves no orphans behind.

Least privilege: every child starts with umask 077 and its log file is 0600 in a 0700
folder, so Redis' append-only files and the logs, which hold transcripts, are private to
the user running the stack; the local Redis needs a password and has a memory bound; the
action server listens on ``ACTION_HOST`` (127.0.0.1) and wants the shared ``ACTION_TOKEN``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.settings import ROOT, Settings, read_env_file

PR_SET_PDEATHSIG = 1
# Rasa reports usage and errors to its servers by default; a support bot keeps customer
# conversations on its own machines (and this network has no route out anyway).
QUIET_RASA = {"RASA_TELEMETRY_ENABLED": "false"}
# Files a child creates (Redis' AOF, Rasa's caches, logs) are readable by this user only.
CHILD_UMASK = 0o077
LOG_TAIL_BYTES = 64 * 1024


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; tighten it if it exists and is ours.

    A shared sticky folder such as /tmp is left alone, should someone point BOT_VAR_DIR at it.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid == os.getuid() and not info.st_mode & stat.S_ISVTX and stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)
    return path


def stored_secret(var_dir: Path, name: str, given: str | None = None) -> str:
    """``given`` if set, else ``name`` from ``var_dir/secrets.env``, generated there on first use.

    The file is git-ignored and 0600; each secret is written once and then reused, so a
    restart (or a second ``make run``) keeps the same Redis password and tokens.
    """
    if given:
        return given
    secrets_file = private_dir(var_dir) / "secrets.env"
    value = read_env_file(secrets_file).get(name)
    fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(fd, 0o600)
        if not value:
            value = secrets.token_hex(24)  # hex: safe in argv, URLs and YAML (never starts with "-")
            os.write(fd, f"{name}={value}\n".encode())
    finally:
        os.close(fd)
    return value


def action_token(settings: Settings) -> str:
    """The secret Rasa presents to the action server: ``ACTION_TOKEN`` or a generated one."""
    return stored_secret(settings.var_dir, "ACTION_TOKEN", settings.action_token)


def _private_log(path: Path) -> int:
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)  # a log left world-readable by an older version is tightened too
    return fd


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
                secret = password.encode()
                sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%b\r\n" % (len(secret), secret))
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
        log = _private_log(self.log_file)
        try:
            self.popen = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                umask=CHILD_UMASK,
            )
        finally:
            os.close(log)

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            with self.log_file.open("rb") as handle:
                handle.seek(max(0, handle.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
                text = handle.read().decode("utf-8", errors="replace")
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


def redis_process(
    port: int, data_dir: Path, log_dir: Path, password: str = "", maxmemory: str | None = None
) -> Process:
    """A local Redis with AOF on: every write is in the file before the client hears OK
    (so it survives a crash of Redis; a crash of the machine loses at most a second).

    With ``password``, clients must AUTH (``requirepass``, kept in a 0600 file in the data
    folder rather than on the command line, where ``ps`` would show it). With
    ``maxmemory`` (e.g. ``1gb``) Redis refuses writes at the bound (``noeviction``)
    instead of silently evicting trackers.
    """
    private_dir(data_dir)
    config: list[str] = []
    if password:
        auth_file = data_dir / "auth.conf"
        fd = os.open(auth_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            quoted = password.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            os.write(fd, f'requirepass "{quoted}"\n'.encode())
        finally:
            os.close(fd)
        config.append(str(auth_file))
    if maxmemory:
        config += ["--maxmemory", maxmemory, "--maxmemory-policy", "noeviction"]
    command = [
        "redis-server",
        *config,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "60 1",
        "--daemonize", "no",
        "--protected-mode", "yes",
    ]  # fmt: skip
    return Process("redis", command, log_dir / "redis.log", lambda: redis_ping("127.0.0.1", port, password))


def service_env(settings: Settings) -> dict[str, str]:
    """The settings a child process must share with its parent (it re-reads them from env)."""
    return {
        "REDIS_URL": settings.redis.url,
        "REDIS_SENTINELS": ",".join(f"{host}:{port}" for host, port in settings.redis_sentinels),
        "REDIS_SENTINEL_SERVICE": settings.redis_sentinel_service,
        "REDIS_SENTINEL_PASSWORD": settings.redis_sentinel_password,
        "RASA_PORT": str(settings.rasa_port),
        "ACTION_HOST": settings.action_host,
        "ACTION_PORT": str(settings.action_port),
        "HANDOFF_PORT": str(settings.handoff_port),
        "KB_DIR": str(settings.kb_dir),
        "BOT_VAR_DIR": str(settings.var_dir),
        "BUSINESS_HOURS_FILE": settings.business_hours_file,
        "RETENTION_DAYS": f"{settings.retention_days:g}",
        "KPI_RETENTION_DAYS": f"{settings.kpi_retention_days:g}",
        "TEAMS_FILE": str(settings.teams_file),
        "ROUTING_OFFER_SECONDS": f"{settings.routing_offer_seconds:g}",
        "STREAM_CLAIM_IDLE_SECONDS": f"{settings.stream_claim_idle_seconds:g}",
        "PROXIES_COUNT": str(settings.proxies_count),
        # Sanic (Rasa's server) reads this itself: request.remote_addr from X-Forwarded-For.
        **({"SANIC_PROXIES_COUNT": str(settings.proxies_count)} if settings.proxies_count else {}),
        "HANDOFF_PUBLIC_URL": settings.handoff_public_url,
        "PYTHONUNBUFFERED": "1",
        **QUIET_RASA,
        **thread_env(),
    }


def thread_env() -> dict[str, str]:
    """Thread counts for the numeric libraries, set before any of them starts.

    OpenMP (the sentence encoder, TensorFlow's oneDNN) and OpenBLAS (numpy) each start a
    thread per core and let idle threads spin. With Rasa, the action server and the handoff
    service on two cores, that spinning took the median message from 70 ms to 165 ms and the
    slowest to 1.5 s (bench/stack_latency.py); the variables are read once, when a library
    loads, so they must be in the child's environment from the start.
    """
    threads = os.environ.get("ENCODER_THREADS") or "1"
    return {"OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def action_server_process(settings: Settings, log_dir: Path) -> Process:
    """``actions/server.py``: rasa_sdk's app on ``ACTION_HOST``, requiring ``ACTION_TOKEN``."""
    env = {**service_env(settings), "ACTION_TOKEN": action_token(settings)}
    command = [sys.executable, "-m", "actions.server"]
    health = settings.action_url.removesuffix("/webhook") + "/health"
    return Process("action server", command, log_dir / "actions.log", lambda: http_ok(health), env)


def rasa_env(settings: Settings) -> dict[str, str]:
    """The variables ``endpoints.yml`` reads: where Redis and the action server are."""
    redis = settings.redis
    return {
        "REDIS_HOST": redis.host,
        "REDIS_PORT": str(redis.port),
        "REDIS_DB": str(redis.db),
        "REDIS_PASSWORD": redis.password,
        "ACTION_ENDPOINT_URL": settings.action_url,
        "ACTION_TOKEN": action_token(settings),
        **(settings.channels or {}),
        **channel_guard_env(settings),
        **meta_channel_env(settings),
        **service_env(settings),
    }


def meta_channel_env(settings: Settings) -> dict[str, str]:
    """What the WhatsApp and Messenger channels read besides ``credentials.yml``."""
    return {
        "MEDIA_MAX_BYTES": str(settings.media_max_bytes),
        "WHATSAPP_TEMPLATE": settings.whatsapp_template,
        "WHATSAPP_TEMPLATE_LANGUAGE": settings.whatsapp_template_language,
    }


def channel_guard_env(settings: Settings) -> dict[str, str]:
    """What Rasa's channels enforce (bot/channels/guard.py) and the secrets they check."""
    limit = "{0.burst}/{0.per_minute:g}".format
    env = {
        "MAX_MESSAGE_CHARS": str(settings.max_message_chars),
        "RATE_LIMIT_SENDER": limit(settings.rate_limit_sender),
        "RATE_LIMIT_ADDRESS": limit(settings.rate_limit_address),
        "TURNS_PER_ADDRESS": str(settings.turns_per_address),
    }
    if settings.rest_token:
        env["REST_TOKEN"] = settings.rest_token
    if settings.webchat_secret:
        env["WEBCHAT_SECRET"] = settings.webchat_secret
    return env


def rasa_process(settings: Settings, model: Path, token: str, log_dir: Path) -> Process:
    host, port = settings.rasa_host, settings.rasa_port
    command = [
        sys.executable, "-m", "bot.rasa_main", "run",  # Rasa with bot/rasa_patches.py applied
        "--model", str(model),
        "--endpoints", str(ROOT / "endpoints.yml"),
        "--credentials", str(ROOT / "credentials.yml"),
        "--interface", host,
        "--port", str(port),
        "--enable-api",
        f"--auth-token={token}",  # one argument, so a token starting with "-" is not an option
    ]  # fmt: skip
    # Without --cors Rasa sends no Access-Control-Allow-Origin: browsers allow same-origin
    # calls only (the demo page and widget.js are served by Rasa itself).
    if settings.cors_origins:
        command += ["--cors", *settings.cors_origins]
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
