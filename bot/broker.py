"""A Rasa event broker that appends every tracker event to a Redis stream.

The handoff service reads the stream with a consumer group, so a customer's message
written while the bot is paused reaches the agent even if the service was down at the
time: the entry waits in the stream (or in the group's pending list) until handled.
Configured in ``endpoints.yml``::

    event_broker:
      type: bot.broker.RedisStreamBroker
      stream: brightline:events
      maxlen: 100000

Redis is the one every process uses (``REDIS_URL``, through Sentinel when
``REDIS_SENTINELS`` is set): :meth:`bot.settings.RedisAddress.sync_client`.
"""

from __future__ import annotations

import json
import logging
from asyncio import AbstractEventLoop
from typing import Any

import redis
from rasa.core.brokers.broker import EventBroker
from rasa.utils.endpoints import EndpointConfig

log = logging.getLogger(__name__)

DEFAULT_STREAM = "brightline:events"
DEFAULT_MAXLEN = 100_000


def stream_fields(event: dict[str, Any]) -> dict[str, str]:
    """Flat fields for XADD: the conversation and event type for cheap filtering, and the
    whole event as JSON so consumers see exactly what Rasa stored."""
    return {
        "sender_id": str(event.get("sender_id") or ""),
        "event": str(event.get("event") or ""),
        "data": json.dumps(event, ensure_ascii=False, default=str),
    }


class RedisStreamBroker(EventBroker):
    def __init__(self, client: redis.Redis, stream: str = DEFAULT_STREAM, maxlen: int = DEFAULT_MAXLEN) -> None:
        self.stream = stream
        self.maxlen = int(maxlen)
        # A stale connection after a Redis restart (or a failover) is retried on a fresh one; a
        # Redis that stays down makes publish() raise, so the turn fails and the customer is told.
        self.client = client

    @classmethod
    async def from_endpoint_config(
        cls, broker_config: EndpointConfig, event_loop: AbstractEventLoop | None = None
    ) -> RedisStreamBroker:
        from bot.settings import load_settings

        kwargs = broker_config.kwargs
        return cls(
            load_settings().redis.sync_client(),
            stream=kwargs.get("stream", DEFAULT_STREAM),
            maxlen=kwargs.get("maxlen", DEFAULT_MAXLEN),
        )

    def publish(self, event: dict[str, Any]) -> None:
        # Synchronous on purpose: Rasa publishes while saving the tracker, and a plain
        # XADD on a local Redis keeps events in order and costs well under a millisecond.
        self.client.xadd(self.stream, stream_fields(event), maxlen=self.maxlen, approximate=True)

    def publish_many(self, events: list[dict[str, Any]]) -> None:
        """Several events in order, in one round trip (a tracker save brings about seven)."""
        if not events:
            return
        pipe = self.client.pipeline(transaction=False)
        self.add_to(pipe, events)
        pipe.execute()

    def add_to(self, pipe: Any, events: list[dict[str, Any]]) -> None:
        """Queue the events' XADDs on ``pipe`` (a sync or asyncio pipeline): the tracker store
        writes them in the same transaction as the tracker."""
        for event in events:
            pipe.xadd(self.stream, stream_fields(event), maxlen=self.maxlen, approximate=True)

    def is_ready(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    async def close(self) -> None:
        self.client.close()
