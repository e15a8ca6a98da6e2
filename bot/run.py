"""``make run``: start Redis, the action server and Rasa, wait until each is healthy,
print the URLs, and stop everything cleanly on Ctrl-C.

Redis is started only when ``REDIS_URL`` is not given. The Rasa HTTP API token comes from
``RASA_TOKEN`` or is generated once into ``var/secrets.env`` (git-ignored, mode 600).
"""

from __future__ import annotations

import secrets
import signal
import sys
import time
from pathlib import Path

from bot.processes import (
    Process,
    StartError,
    action_server_process,
    handoff_process,
    port_is_free,
    rasa_process,
    redis_ping,
    redis_process,
)
from bot.settings import Settings, SettingsError, load_settings, read_env_file
from bot.train import train

START_TIMEOUT = 240.0


def api_token(settings: Settings) -> str:
    if settings.rasa_token:
        return settings.rasa_token
    secrets_file = settings.var_dir / "secrets.env"
    token = read_env_file(secrets_file).get("RASA_TOKEN")
    if not token:
        token = secrets.token_urlsafe(24)
        secrets_file.parent.mkdir(parents=True, exist_ok=True)
        secrets_file.touch(mode=0o600)
        with secrets_file.open("a", encoding="utf-8") as handle:
            handle.write(f"RASA_TOKEN={token}\n")
    return token


def _check_ports(settings: Settings) -> None:
    wanted = [
        ("RASA_PORT", settings.rasa_port),
        ("ACTION_PORT", settings.action_port),
        ("HANDOFF_PORT", settings.handoff_port),
    ]
    if not settings.redis_url:
        wanted.append(("REDIS_PORT", settings.redis_port))
    for name, port in wanted:
        if not port_is_free(port):
            raise StartError(f"port {port} is already in use; stop what holds it or set {name} to another port")


def banner(settings: Settings, token_hint: str) -> str:
    curl_body = '{"sender": "demo", "message": "How can I pay my bill?"}'
    rest = f"{settings.rasa_url}/webhooks/rest/webhook"
    redis = settings.redis
    where = f"{settings.var_dir / 'redis'}" if not settings.redis_url else "REDIS_URL"
    return f"""
Brightline assistant is running.
  Demo website      {settings.rasa_url}/webhooks/webchat/demo   (chat widget, bottom right)
  Widget script     <script src="{settings.rasa_url}/webhooks/webchat/widget.js" defer></script>
  REST channel      {rest}
  socket.io channel {settings.rasa_url}/socket.io
  WhatsApp webhook  {settings.rasa_url}/webhooks/whatsapp/webhook   (docs/channels.md)
  Messenger webhook {settings.rasa_url}/webhooks/messenger/webhook
  Rasa HTTP API     {settings.rasa_url}  (token: {token_hint})
  Action server     http://127.0.0.1:{settings.action_port}/health
  Agent console     {settings.handoff_url}/
                    first agent: .venv/bin/python -m handoff.agents add alice
  Redis             redis://{redis.host}:{redis.port}/{redis.db}  (data: {where})
  Logs              {settings.var_dir / "log"}

Ask the bot a question:
  curl -s -X POST {rest} -H 'Content-Type: application/json' -d '{curl_body}'

Press Ctrl-C to stop.
""".rstrip()


def _interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM stops the stack the same way Ctrl-C does."""
    raise KeyboardInterrupt


def run(settings: Settings) -> int:
    model = train(quiet=True)
    token = api_token(settings)
    _check_ports(settings)
    log_dir = settings.var_dir / "log"
    started: list[Process] = []
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        plan: list[Process] = []
        if settings.redis_url:
            redis = settings.redis
            if not redis_ping(redis.host, redis.port, redis.password, timeout=3):
                raise StartError(f"cannot reach Redis at REDIS_URL ({redis.host}:{redis.port})")
        else:
            plan.append(redis_process(settings.redis_port, settings.var_dir / "redis", log_dir))
        plan.append(action_server_process(settings, log_dir))
        plan.append(rasa_process(settings, model, token, log_dir))
        plan.append(handoff_process(settings, token, log_dir))
        for process in plan:
            print(f"starting {process.name} ...", flush=True)
            process.start()
            started.append(process)
            print(f"  {process.name} started (pid {process.pid})", flush=True)
            process.wait_healthy(START_TIMEOUT)
        hint = "RASA_TOKEN" if settings.rasa_token else f"RASA_TOKEN in {settings.var_dir / 'secrets.env'}"
        print(banner(settings, hint), flush=True)
        while True:
            for process in started:
                if not process.running():
                    raise StartError(f"{process.name} stopped unexpectedly; last lines:\n{process.log_tail()}")
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    except StartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if started:
            print("\nstopping ...", flush=True)
        for process in reversed(started):
            process.stop()
            print(f"  {process.name} stopped (pid {process.pid})", flush=True)


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    Path(settings.var_dir).mkdir(parents=True, exist_ok=True)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
