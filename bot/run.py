"""``make run``: start Redis, the action server, Rasa and the handoff service, wait until
each is healthy, print the URLs, keep them up (a crashed child is restarted with backoff,
see ``bot/supervisor.py``) and stop everything cleanly on Ctrl-C.

Redis is started only when ``REDIS_URL`` is not given. Secrets come from the environment
or are generated once into ``var/secrets.env`` (git-ignored, mode 600): ``RASA_TOKEN``
(Rasa's HTTP API), ``ACTION_TOKEN`` (Rasa to the action server) and ``REDIS_PASSWORD``
(the local Redis), ``REST_TOKEN`` (the REST channel) and ``WEBCHAT_SECRET`` (signs the
widget's sessions). Everything under ``var/`` is private to the user (0700 / 0600).
"""

from __future__ import annotations

import dataclasses
import os
import sys

from bot.processes import (
    CHILD_UMASK,
    Process,
    StartError,
    action_server_process,
    handoff_process,
    port_is_free,
    private_dir,
    rasa_process,
    redis_ping,
    redis_process,
    stored_secret,
)
from bot.settings import RedisAddress, Settings, SettingsError, load_settings, read_env_file
from bot.supervisor import Supervisor
from bot.train import train

START_TIMEOUT = 240.0


def api_token(settings: Settings) -> str:
    return stored_secret(settings.var_dir, "RASA_TOKEN", settings.rasa_token)


def with_redis_password(settings: Settings) -> Settings:
    """The local Redis always gets a password; one given by ``REDIS_URL`` is the user's."""
    if settings.redis_url or settings.redis_password:
        return settings
    return dataclasses.replace(settings, redis_password=stored_secret(settings.var_dir, "REDIS_PASSWORD"))


def with_channel_secrets(settings: Settings) -> Settings:
    """The REST channel's token and the key that signs widget sessions, kept across restarts."""
    return dataclasses.replace(
        settings,
        rest_token=stored_secret(settings.var_dir, "REST_TOKEN", settings.rest_token),
        webchat_secret=stored_secret(settings.var_dir, "WEBCHAT_SECRET", settings.webchat_secret),
    )


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


def _secret_hint(settings: Settings, name: str) -> str:
    secrets_file = settings.var_dir / "secrets.env"
    return f"{name} in {secrets_file}" if name in read_env_file(secrets_file) and not os.environ.get(name) else name


def banner(settings: Settings, token_hint: str) -> str:
    curl_body = '{"sender": "demo", "message": "How can I pay my bill?"}'
    rest = f"{settings.rasa_url}/webhooks/rest/webhook"
    curl = (
        f"curl -s -X POST {rest} -H 'Authorization: Bearer {settings.rest_token}'"
        f" -H 'Content-Type: application/json' -d '{curl_body}'"
    )
    redis = settings.redis
    where = f"{settings.var_dir / 'redis'}" if not settings.redis_url else "REDIS_URL"
    password = "" if settings.redis_url else f", password: {_secret_hint(settings, 'REDIS_PASSWORD')}"
    actions = settings.action_url.removesuffix("/webhook")
    origins = ", ".join(settings.cors_origins) or "same origin only; set CORS_ORIGINS to allow sites"
    return f"""
Brightline assistant is running.
  Demo website      {settings.rasa_url}/webhooks/webchat/demo   (chat widget, bottom right)
  Widget script     <script src="{settings.rasa_url}/webhooks/webchat/widget.js" defer></script>
  REST channel      {rest}   (token: {_secret_hint(settings, "REST_TOKEN")})
  socket.io channel {settings.rasa_url}/socket.io
  WhatsApp webhook  {settings.rasa_url}/webhooks/whatsapp/webhook   (docs/channels.md)
  Messenger webhook {settings.rasa_url}/webhooks/messenger/webhook
  Rasa HTTP API     {settings.rasa_url}  (token: {token_hint}; CORS: {origins})
  Action server     {actions}/health  (token: {_secret_hint(settings, "ACTION_TOKEN")})
  Agent console     {settings.handoff_url}/
                    first agent: .venv/bin/python -m handoff.agents add alice
  Editors' page     {settings.handoff_url}/editor   (accounts added with --roles editor)
  Team dashboard    {settings.handoff_url}/dashboard   (accounts added with --roles lead)
  Redis             redis://{redis.host}:{redis.port}/{redis.db}  (data: {where}{password})
  Logs              {settings.var_dir / "log"}

Ask the bot a question:
  {curl}

Press Ctrl-C to stop.
""".rstrip()


def sentinel_ping(redis: RedisAddress) -> bool:
    """The primary the sentinels name answers."""
    import redis as redis_py

    try:
        return bool(redis.sync_client(timeout=3).ping())
    except redis_py.RedisError:
        return False


def run(settings: Settings) -> int:
    model = train(quiet=True)
    settings = with_channel_secrets(with_redis_password(settings))
    token = api_token(settings)
    try:
        _check_ports(settings)
        if settings.redis_url:
            redis = settings.redis
            if redis.sentinels:
                if not sentinel_ping(redis):
                    raise StartError(f"cannot reach the Redis primary {redis.service!r} through REDIS_SENTINELS")
            elif not redis_ping(redis.host, redis.port, redis.password, timeout=3):
                raise StartError(f"cannot reach Redis at REDIS_URL ({redis.host}:{redis.port})")
    except StartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    log_dir = private_dir(settings.var_dir / "log")
    plan: list[Process] = []
    if not settings.redis_url:
        redis_dir = settings.var_dir / "redis"
        plan.append(
            redis_process(settings.redis_port, redis_dir, log_dir, settings.redis_password, settings.redis_maxmemory)
        )
    plan.append(action_server_process(settings, log_dir))
    plan.append(rasa_process(settings, model, token, log_dir))
    plan.append(handoff_process(settings, token, log_dir))
    hint = _secret_hint(settings, "RASA_TOKEN")
    return Supervisor(plan).serve(lambda: print(banner(settings, hint), flush=True), START_TIMEOUT)


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    os.umask(CHILD_UMASK)  # secrets, logs and anything else this process writes: owner only
    private_dir(settings.var_dir)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
