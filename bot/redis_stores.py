"""Rasa's Redis tracker store and lock store, opened the one way our processes open Redis.

Rasa 3.6 builds its own ``redis.StrictRedis`` from ``endpoints.yml`` (host, port, password):
no Redis Sentinel, and no retry on a dropped connection. These subclasses keep Rasa's logic
and replace only the client with :meth:`bot.settings.RedisAddress.sync_client`, so Rasa
follows the primary through a failover exactly as the action server, the handoff service
and the event broker do. Configured in ``endpoints.yml`` by module path.
"""

from __future__ import annotations

from typing import Any

from rasa.core.lock_store import DEFAULT_SOCKET_TIMEOUT_IN_SECONDS, RedisLockStore
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.domain import Domain

from bot.settings import load_settings


class TrackerStore(RedisTrackerStore):
    def __init__(
        self,
        domain: Domain,
        host: str | None = None,
        event_broker: Any = None,
        key_prefix: str | None = None,
        record_exp: float | None = None,
        **_: Any,
    ) -> None:
        super().__init__(domain, event_broker=event_broker, key_prefix=key_prefix, record_exp=record_exp)
        self.red = load_settings().redis.sync_client(decode_responses=True)


class LockStore(RedisLockStore):
    def __init__(self, endpoint_config: Any = None, **_: Any) -> None:
        options = dict(getattr(endpoint_config, "kwargs", None) or {})
        timeout = float(options.get("socket_timeout") or DEFAULT_SOCKET_TIMEOUT_IN_SECONDS)
        super().__init__(key_prefix=options.get("key_prefix"), socket_timeout=timeout)
        self.red = load_settings().redis.sync_client(timeout=timeout)
