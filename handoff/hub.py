"""Open console WebSockets by agent; every send is guarded so one dead socket never
breaks a broadcast to the others."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


class Hub:
    def __init__(self) -> None:
        self._sockets: dict[str, set[web.WebSocketResponse]] = defaultdict(set)

    def add(self, agent: str, socket: web.WebSocketResponse) -> None:
        self._sockets[agent].add(socket)

    def remove(self, agent: str, socket: web.WebSocketResponse) -> None:
        self._sockets[agent].discard(socket)
        if not self._sockets[agent]:
            del self._sockets[agent]

    @property
    def agents(self) -> list[str]:
        return list(self._sockets)

    async def send_to_agent(self, agent: str, payload: dict[str, Any]) -> None:
        for socket in list(self._sockets.get(agent, ())):
            await self._send(agent, socket, payload)

    async def broadcast(self, payload: dict[str, Any]) -> None:
        for agent in self.agents:
            await self.send_to_agent(agent, payload)

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
