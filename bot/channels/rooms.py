"""socket.io rooms shared by every Rasa process, through Redis pub/sub.

A widget's socket is connected to one Rasa process, but its replies may come from any: the
bot's from whichever replica handled the message, an agent's from whichever one took the
handoff service's API call. python-socketio's Redis manager publishes every emit, and each
process delivers it to the sockets it holds in that room (local ones at once, before the
publish). Ours differs from python-socketio's in two ways:

* it opens Redis the one way our processes do (``RedisAddress.client``, Sentinel-aware),
  with no socket timeout on the subscription, which would end it while the channel is quiet;
* messages are JSON, not pickle: python-socketio unpickles what it reads from the channel,
  so anyone able to publish on it could run code in Rasa's process. What it reads must be
  a JSON object, or it is dropped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from redis.exceptions import RedisError
from socketio import AsyncRedisManager, AsyncServer

from bot.settings import RedisAddress

log = logging.getLogger(__name__)

CHANNEL = "webchat:socketio"


class SharedRooms(AsyncRedisManager):
    name = "shared-rooms"

    def __init__(self, address: RedisAddress, channel: str = CHANNEL) -> None:
        self.address = address
        super().__init__(url=address.url, channel=channel)

    def _redis_connect(self) -> None:
        # Publishing times out like any command (an emit waits for it); the subscription has no
        # timeout, or a quiet channel would end it.
        self.redis = self.address.client()
        self.pubsub = self.address.client(timeout=None).pubsub(ignore_subscribe_messages=True)

    async def _publish(self, data: dict[str, Any]) -> Any:
        message = json.dumps(data)
        for attempt in (1, 2):
            try:
                return await self.redis.publish(self.channel, message)
            except RedisError as exc:  # the local sockets have it already; the others miss it
                if attempt == 2:
                    log.error("socket.io event not shared with other Rasa processes: %r", exc)
                    return None
                self._redis_connect()
        return None

    async def _listen(self) -> AsyncIterator[dict[str, Any]]:
        async for raw in super()._listen():
            try:
                data = json.loads(raw)
            except (TypeError, ValueError):
                continue
            if isinstance(data, dict):
                yield data


def share_rooms(sio: AsyncServer, address: RedisAddress) -> SharedRooms:
    """Give ``sio`` (before its first connection) rooms shared through Redis."""
    manager = SharedRooms(address)
    sio.manager = manager
    manager.set_server(sio)
    return manager
