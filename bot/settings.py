"""The one place configuration is read: environment variables, then a git-ignored ``.env``.

Every process (runner, action server, CLIs, tests) calls :func:`load_settings`, so a
variable means the same thing everywhere and a bad value is reported once, by name,
at start-up rather than as a stack trace in the middle of a conversation.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from bot.channels.guard import (
    DEFAULT_ADDRESS_LIMIT,
    DEFAULT_MAX_MESSAGE_CHARS,
    DEFAULT_SENDER_LIMIT,
    DEFAULT_TURNS_PER_ADDRESS,
)
from bot.kb.matcher import MatchSettings
from bot.ratelimit import Limit, parse_limit

if TYPE_CHECKING:
    from redis import Redis as SyncRedis
    from redis.asyncio import Redis as AsyncRedis

    from bot.frustration import FrustrationSettings

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MEDIA_MAX_BYTES = 10 * 1024 * 1024  # MEDIA_MAX_BYTES (bot/channels/media.py)


# What credentials.yml reads for the Meta channels. Rasa refuses to start when a variable
# it references is unset, so each has a default; an empty secret makes its channel refuse
# every webhook (403) rather than accept unsigned ones.
CHANNEL_VARIABLES = {
    "GRAPH_API_URL": "https://graph.facebook.com",
    "GRAPH_API_VERSION": "v21.0",
    "WHATSAPP_VERIFY_TOKEN": "",
    "WHATSAPP_APP_SECRET": "",
    "WHATSAPP_ACCESS_TOKEN": "",
    "WHATSAPP_PHONE_NUMBER_ID": "",
    "MESSENGER_VERIFY_TOKEN": "",
    "MESSENGER_APP_SECRET": "",
    "MESSENGER_PAGE_ACCESS_TOKEN": "",
}


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class RedisAddress:
    host: str
    port: int
    db: int = 0
    password: str = ""
    use_ssl: bool = False
    # With Redis Sentinel: the sentinels' addresses and the name they monitor the primary
    # under; the primary's host and port above are then ignored (the sentinels say).
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    sentinel_password: str = ""  # when the sentinels themselves require one (REDIS_SENTINEL_PASSWORD)

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
            raise SettingsError(f"REDIS_URL must look like redis://[:password@]host:port/db, got {url!r}")
        db = parsed.path.lstrip("/") or "0"
        if not db.isdigit():
            raise SettingsError(f"REDIS_URL database must be a number, got {db!r}")
        return cls(
            host=parsed.hostname,
            port=parsed.port or 6379,
            db=int(db),
            password=parsed.password or "",
            use_ssl=parsed.scheme == "rediss",
        )

    def client(self, timeout: float | None = 5.0) -> AsyncRedis:
        """The one way our processes open Redis (``redis.asyncio``, no connection until used).

        Commands time out instead of hanging, and a command on a connection Redis dropped
        (it restarted) is retried on a fresh one, so a Redis restart costs no request. With
        sentinels, each new connection asks them where the primary is, and the retries span
        a failover (the sentinels promote a replica within a few seconds).
        """
        from redis.asyncio import Redis
        from redis.asyncio.sentinel import Sentinel

        options = self._options(timeout)
        if self.sentinels:
            return Sentinel(list(self.sentinels), sentinel_kwargs=self._sentinel_options()).master_for(
                self.service, redis_class=Redis, **options
            )
        return Redis(host=self.host, port=self.port, **options)

    def sync_client(self, timeout: float | None = 5.0, decode_responses: bool = False) -> SyncRedis:
        """The same, blocking (``redis.Redis``): for Rasa's tracker and lock stores and the broker."""
        from redis import Redis
        from redis.sentinel import Sentinel

        options = self._options(timeout, sync=True)
        if self.sentinels:
            return Sentinel(list(self.sentinels), sentinel_kwargs=self._sentinel_options()).master_for(
                self.service, redis_class=Redis, decode_responses=decode_responses, **options
            )
        return Redis(host=self.host, port=self.port, decode_responses=decode_responses, **options)

    def _sentinel_options(self) -> dict:
        options: dict = {"socket_timeout": 1.0, "socket_keepalive": True, "ssl": self.use_ssl}
        if self.sentinel_password:
            options["password"] = self.sentinel_password
        return options

    def _options(self, timeout: float | None, sync: bool = False) -> dict:
        from redis.backoff import ExponentialBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        if sync:
            from redis.retry import Retry
        else:
            from redis.asyncio.retry import Retry
        # A restart: one quick retry. A failover: retries over about 4 s, while the sentinels
        # agree the primary is down and promote its replica.
        retry = (
            Retry(ExponentialBackoff(cap=1.0, base=0.1), 7)
            if self.sentinels
            else (Retry(ExponentialBackoff(cap=0.5, base=0.05), 2))
        )
        return {
            "db": self.db,
            "password": self.password or None,
            "ssl": self.use_ssl,
            "socket_connect_timeout": 2,
            "socket_timeout": timeout,
            # A machine that vanishes (rather than a process that dies) is noticed by TCP
            # keepalive: a quiet pub/sub subscription has no other way to learn it.
            "socket_keepalive": True,
            "retry": retry,
            "retry_on_error": [RedisConnectionError],
        }

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        scheme = "rediss" if self.use_ssl else "redis"
        return f"{scheme}://{auth}{self.host}:{self.port}/{self.db}"


@dataclass(frozen=True)
class Settings:
    rasa_host: str
    rasa_port: int
    action_port: int
    redis_port: int
    redis_url: str | None
    rasa_token: str | None
    var_dir: Path
    kb_dir: Path
    match: MatchSettings
    # The sentence encoder's vectors, kept across starts (bot.nlu.encoder.Encoder.save_cache);
    # shared by training, the action server and the CLI: one cold build, then only changes.
    vectors_file: Path = ROOT / "var" / "vectors.npz"
    handoff_host: str = "127.0.0.1"
    handoff_port: int = 5080
    # Where agents open the console (https://console.example.com): the only Origin its
    # POSTs and WebSocket accept. Empty: the request's own Host.
    handoff_public_url: str = ""
    cookie_secure: bool = False
    avg_handle_minutes: float = 4.0
    canned_file: Path = ROOT / "data" / "console" / "canned_responses.yml"
    frustration: FrustrationSettings | None = None
    channels: dict[str, str] | None = None
    business_hours_file: str = str(ROOT / "data" / "console" / "business_hours.yml")
    retention_days: float = 0.0  # RETENTION_DAYS: delete conversations idle this long; 0 keeps them
    teams_file: Path = ROOT / "data" / "console" / "teams.yml"
    # ROUTING_OFFER_SECONDS: a chat offered to an agent who does not take it goes to the next after this.
    routing_offer_seconds: float = 30.0
    # STREAM_CLAIM_IDLE_SECONDS: an event another handoff-service replica read but did not
    # finish this long ago (it died) is taken over by a live replica.
    stream_claim_idle_seconds: float = 30.0
    # KPI_RETENTION_DAYS: how long the team lead's figures keep their facts (no message text in them).
    kpi_retention_days: float = 400.0
    # What every channel enforces before NLU (bot/channels/guard.py).
    max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS
    rate_limit_sender: Limit = DEFAULT_SENDER_LIMIT
    rate_limit_address: Limit = DEFAULT_ADDRESS_LIMIT
    turns_per_address: int = DEFAULT_TURNS_PER_ADDRESS
    # PROXIES_COUNT: how many load balancers in front append to X-Forwarded-For (0: none, the
    # TCP peer is the client). Behind one HAProxy, 1: the per-address limits then apply to
    # each customer, not to the balancer, and an X-Forwarded-For the client wrote is ignored.
    proxies_count: int = 0
    # The REST channel answers only requests bearing this token; unset, it is off.
    rest_token: str | None = None
    # Signs webchat session tokens; without it sessions do not survive a restart of Rasa.
    webchat_secret: str | None = None
    action_host: str = "127.0.0.1"
    action_token: str | None = None
    redis_password: str = ""
    redis_maxmemory: str = "1gb"
    # REDIS_SENTINELS (host:port,host:port,...) and REDIS_SENTINEL_SERVICE: reach the primary
    # through Redis Sentinel; REDIS_URL then gives only the password and database.
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_service: str = "brightline"
    redis_sentinel_password: str = ""
    cors_origins: tuple[str, ...] = ()
    # WhatsApp and Messenger (bot/channels/media.py, bot/channels/window.py): the largest file a
    # customer may send an agent, and the approved template for messages after WhatsApp's 24 h.
    media_max_bytes: int = DEFAULT_MEDIA_MAX_BYTES
    whatsapp_template: str = ""
    whatsapp_template_language: str = "en_US"

    @property
    def redis(self) -> RedisAddress:
        """Where Redis is: ``REDIS_URL`` when given, else the local one ``make run`` starts
        (with ``REDIS_PASSWORD``, which ``make run`` generates into ``var/secrets.env``)."""
        if self.redis_url:
            address = RedisAddress.from_url(self.redis_url)
            if self.redis_sentinels:
                return replace(
                    address,
                    sentinels=self.redis_sentinels,
                    service=self.redis_sentinel_service,
                    sentinel_password=self.redis_sentinel_password,
                )
            return address
        return RedisAddress("127.0.0.1", self.redis_port, password=self.redis_password)

    @property
    def rasa_url(self) -> str:
        return f"http://{self.rasa_host}:{self.rasa_port}"

    @property
    def handoff_url(self) -> str:
        return f"http://{self.handoff_host}:{self.handoff_port}"

    @property
    def action_url(self) -> str:
        host = "127.0.0.1" if self.action_host in ("0.0.0.0", "::", "") else self.action_host
        return f"http://{host}:{self.action_port}/webhook"


def read_env_file(path: Path) -> dict[str, str]:
    """Parse ``KEY=value`` lines; ``#`` comments and surrounding quotes are allowed."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if not 0 < value < 65536 and name.endswith("PORT"):
        raise SettingsError(f"{name} must be a port between 1 and 65535, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def _maxmemory(env: Mapping[str, str], default: str) -> str:
    raw = (env.get("REDIS_MAXMEMORY") or default).strip().lower()
    if not re.fullmatch(r"\d+(b|k|kb|m|mb|g|gb)?", raw):
        raise SettingsError(f"REDIS_MAXMEMORY must be a size such as 512mb or 1gb (0: no bound), got {raw!r}")
    return raw


def _origins(env: Mapping[str, str]) -> tuple[str, ...]:
    origins = tuple(part.strip() for part in (env.get("CORS_ORIGINS") or "").split(",") if part.strip())
    if "*" in origins:
        raise SettingsError("CORS_ORIGINS lists the sites allowed to call Rasa from a browser; '*' is not allowed")
    return origins


def _limit(env: Mapping[str, str], name: str, default: Limit) -> Limit:
    """``BURST/PER_MINUTE``, e.g. ``RATE_LIMIT_SENDER=15/30``."""
    if not env.get(name):
        return default
    try:
        return parse_limit(env[name], name)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def _template(env: Mapping[str, str]) -> str:
    raw = (env.get("WHATSAPP_TEMPLATE") or "").strip()
    if raw and not re.fullmatch(r"[a-z0-9_]{1,512}", raw):
        raise SettingsError(
            "WHATSAPP_TEMPLATE must be the name of an approved WhatsApp template (lower-case letters, digits "
            f"and _), got {raw!r}"
        )
    return raw


def _template_language(env: Mapping[str, str]) -> str:
    raw = (env.get("WHATSAPP_TEMPLATE_LANGUAGE") or "en_US").strip()
    if not re.fullmatch(r"[a-z]{2,3}(_[A-Za-z]{2,4})?", raw):
        raise SettingsError(f"WHATSAPP_TEMPLATE_LANGUAGE must be a template language code such as en_US, got {raw!r}")
    return raw


def _non_negative(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value < 0:
        raise SettingsError(f"{name} must be 0 or more, got {value}")
    return value


def _sentinels(env: Mapping[str, str]) -> tuple[tuple[str, int], ...]:
    raw = (env.get("REDIS_SENTINELS") or "").strip()
    if not raw:
        return ()
    if not env.get("REDIS_URL"):
        raise SettingsError("REDIS_SENTINELS needs REDIS_URL too (for the password and database)")
    found = []
    for item in raw.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"REDIS_SENTINELS must look like host:port,host:port; got {item.strip()!r}")
        found.append((host, int(port)))
    return tuple(found)


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value <= 0:
        raise SettingsError(f"{name} must be more than 0, got {value}")
    return value


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise SettingsError(f"{name} must be at least 1, got {value}")
    return value


def load_settings(env: Mapping[str, str] | None = None, env_file: Path | None = None) -> Settings:
    """Build settings from ``env`` (default: the process environment) over ``.env``.

    With the process environment (no ``env`` given), a ``REDIS_PASSWORD`` that ``make run``
    generated into ``var/secrets.env`` is used too, so CLIs such as ``python -m
    handoff.agents`` reach the local Redis; an explicit ``env`` is taken as complete.
    """
    from bot.frustration import frustration_settings_from_env  # imports SettingsError from here

    merged = dict(read_env_file(env_file or ROOT / ".env"))
    merged.update(os.environ if env is None else env)
    defaults = MatchSettings()
    try:
        match = MatchSettings(
            answer_cutoff=_float(merged, "KB_ANSWER_CUTOFF", defaults.answer_cutoff),
            suggest_cutoff=_float(merged, "KB_SUGGEST_CUTOFF", defaults.suggest_cutoff),
            margin=_float(merged, "KB_MARGIN", defaults.margin),
        )
    except ValueError as exc:
        if isinstance(exc, SettingsError):
            raise
        raise SettingsError(f"KB_ANSWER_CUTOFF / KB_SUGGEST_CUTOFF: {exc}") from None
    var_dir = Path(merged.get("BOT_VAR_DIR") or ROOT / "var")
    redis_password = merged.get("REDIS_PASSWORD") or ""
    if not redis_password and env is None:
        redis_password = read_env_file(var_dir / "secrets.env").get("REDIS_PASSWORD", "")
    settings = Settings(
        rasa_host=merged.get("RASA_HOST") or "127.0.0.1",
        rasa_port=_int(merged, "RASA_PORT", 5005),
        action_port=_int(merged, "ACTION_PORT", 5055),
        redis_port=_int(merged, "REDIS_PORT", 6380),
        redis_url=merged.get("REDIS_URL") or None,
        rasa_token=merged.get("RASA_TOKEN") or None,
        var_dir=var_dir,
        kb_dir=Path(merged.get("KB_DIR") or ROOT / "data" / "faq"),
        match=match,
        vectors_file=Path(merged.get("ENCODER_VECTORS_FILE") or ROOT / "var" / "vectors.npz"),
        handoff_host=merged.get("HANDOFF_HOST") or "127.0.0.1",
        handoff_port=_int(merged, "HANDOFF_PORT", 5080),
        handoff_public_url=merged.get("HANDOFF_PUBLIC_URL") or "",
        cookie_secure=(merged.get("COOKIE_SECURE") or "").lower() in ("1", "true", "yes"),
        avg_handle_minutes=_float(merged, "AVG_HANDLE_MINUTES", 4.0),
        canned_file=Path(merged.get("CANNED_FILE") or ROOT / "data" / "console" / "canned_responses.yml"),
        frustration=frustration_settings_from_env(merged),
        channels={name: merged.get(name) or default for name, default in CHANNEL_VARIABLES.items()},
        business_hours_file=merged.get("BUSINESS_HOURS_FILE") or str(ROOT / "data" / "console" / "business_hours.yml"),
        retention_days=_non_negative(merged, "RETENTION_DAYS", 0.0),
        teams_file=Path(merged.get("TEAMS_FILE") or ROOT / "data" / "console" / "teams.yml"),
        routing_offer_seconds=_positive_float(merged, "ROUTING_OFFER_SECONDS", 30.0),
        stream_claim_idle_seconds=_positive_float(merged, "STREAM_CLAIM_IDLE_SECONDS", 30.0),
        kpi_retention_days=_non_negative(merged, "KPI_RETENTION_DAYS", 400.0),
        action_host=merged.get("ACTION_HOST") or "127.0.0.1",
        action_token=merged.get("ACTION_TOKEN") or None,
        redis_password=redis_password,
        redis_maxmemory=_maxmemory(merged, "1gb"),
        redis_sentinels=_sentinels(merged),
        redis_sentinel_service=merged.get("REDIS_SENTINEL_SERVICE") or "brightline",
        redis_sentinel_password=merged.get("REDIS_SENTINEL_PASSWORD") or "",
        cors_origins=_origins(merged),
        max_message_chars=_positive(merged, "MAX_MESSAGE_CHARS", DEFAULT_MAX_MESSAGE_CHARS),
        rate_limit_sender=_limit(merged, "RATE_LIMIT_SENDER", DEFAULT_SENDER_LIMIT),
        rate_limit_address=_limit(merged, "RATE_LIMIT_ADDRESS", DEFAULT_ADDRESS_LIMIT),
        turns_per_address=_positive(merged, "TURNS_PER_ADDRESS", DEFAULT_TURNS_PER_ADDRESS),
        proxies_count=_int(merged, "PROXIES_COUNT", 0),
        rest_token=merged.get("REST_TOKEN") or None,
        webchat_secret=merged.get("WEBCHAT_SECRET") or None,
        media_max_bytes=_positive(merged, "MEDIA_MAX_BYTES", DEFAULT_MEDIA_MAX_BYTES),
        whatsapp_template=_template(merged),
        whatsapp_template_language=_template_language(merged),
    )
    settings.redis  # noqa: B018 - validates REDIS_URL now, not on first use
    return settings
