"""Open console WebSockets by agent, and the pushes every replica's consoles must see.

An agent's console is connected to one replica of the handoff service, but the event that
concerns it (a customer's message, read from the stream by whichever replica's consumer got
it; a chat taken on another replica) may arrive anywhere. So every push is delivered to this
replica's sockets at once and published on ``keys.HUB``; the other replicas deliver it to
theirs (each skips what it published itself). A push lost while Redis is away is not
resent: the console resyncs from the API when it reconnects, as it does after any gap.

Every send is guarded so one dead socket never breaks a broadcast to the others.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from bot.pubsub import follow
from handoff import keys

log = logging.getLogger(__name__)

QueueSignal = Callable[[str | None], Awaitable[None]]  # another replica says a queue changed (agent or everyone)


class Hub:
    def __init__(self, redis: Redis | None = None) -> None:
        self._sockets: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self.redis = redis  # None: a single replica that shares nothing (tests of one part)
        self.node = uuid.uuid4().hex

    def add(self, agent: str, socket: web.WebSocketResponse) -> None:
        self._sockets[agent].add(socket)

    def remove(self, agent: str, socket: web.WebSocketResponse) -> None:
        self._sockets[agent].discard(socket)
        if not self._sockets[agent]:
            del self._sockets[agent]

    @property
    def agents(self) -> list[str]:
        """Agents with a console open on this replica."""
        return list(self._sockets)

    async def send_to_agent(self, agent: str, payload: dict[str, Any]) -> None:
        """Every console of ``agent``, on every replica."""
        await self.deliver(agent, payload)
        await self.share({"agent": agent, "payload": payload})

    async def broadcast(self, payload: dict[str, Any]) -> None:
        """Every open console, on every replica."""
        await self.deliver(None, payload)
        await self.share({"agent": None, "payload": payload})

    async def deliver(self, agent: str | None, payload: dict[str, Any]) -> None:
        """This replica's consoles of ``agent`` (``None``: all of them)."""
        for name in [agent] if agent is not None else self.agents:
            for socket in list(self._sockets.get(name, ())):
                await self._send(name, socket, payload)

    async def share(self, message: dict[str, Any]) -> None:
        """Tell the other replicas; a failure costs them one push, never this replica's."""
        if self.redis is None:
            return
        try:
            await self.redis.publish(keys.HUB, json.dumps({**message, "node": self.node}, ensure_ascii=False))
        except Exception as exc:  # Redis away: the other replicas' consoles resync when it is back
            log.info("push not shared with other replicas: %r", exc)

    async def follow(self, on_queue: QueueSignal) -> None:
        """Deliver what the other replicas push, forever; a queue signal goes to ``on_queue``."""
        if self.redis is None:
            return

        async def handle(_channel: str, data: dict[str, Any]) -> None:
            if data.get("node") == self.node:
                return
            agent = data.get("agent")
            if agent is not None and not isinstance(agent, str):
                return
            if isinstance(data.get("payload"), dict):
                await self.deliver(agent, data["payload"])
            elif "queue" in data:
                queue = data["queue"]
                await on_queue(queue if isinstance(queue, str) and queue != "*" else None)

        await follow(self.redis, (keys.HUB,), handle, "pushes from other replicas")

    async def _send(self, agent: str, socket: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        if socket.closed:
            self.remove(agent, socket)
            return
        try:
            await socket.send_json(payload)
        except (ConnectionError, RuntimeError) as exc:
            log.info("dropping a dead console socket of %s: %s", agent, exc)
            self.remove(agent, socket)

    async def close_all(self) -> None:
        for agent in self.agents:
            for socket in list(self._sockets.get(agent, ())):
                await socket.close()
        self._sockets.clear()
