"""Following Redis pub/sub channels for signals between processes (typing, pushed notes).

One loop for every follower: it survives Redis outages (resubscribes after 2 s) and polls in
short waits, because a pool's socket timeout would otherwise end a subscription that is
quiet for a while. Nothing sent this way is stored; a signal lost in an outage is lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], Awaitable[None]]


async def follow(redis: Redis, channels: tuple[str, ...], handle: Handler, what: str) -> None:
    """Call ``handle(channel, data)`` for each JSON object published on ``channels``, forever."""
    while True:
        try:
            pubsub = redis.pubsub()
            await pubsub.subscribe(*channels)
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None or message.get("type") != "message":
                    continue
                try:
                    data = json.loads(message["data"])
                except (TypeError, ValueError):
                    continue
                if isinstance(data, dict):
                    channel = message.get("channel")
                    await handle(channel.decode() if isinstance(channel, bytes) else str(channel), data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis away (or a bug in one signal): the signals pause, nothing else
            log.info("%s paused: %r", what, exc)
            await asyncio.sleep(2)
