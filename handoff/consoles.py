"""Which consoles are open, on any replica, and which chat each one shows.

An agent may have consoles on two replicas (two tabs behind a load balancer, or one that
reconnected to the other node), so neither "is this agent's last console closed?" nor "who
else is looking at this chat?" can be answered from one process's sockets. Both live in
Redis as sorted sets scored by expiry: ``handoff:consoles:{agent}`` (one member per open
socket) and ``handoff:viewers:{conversation}`` (agent and socket). A console's ping renews
its entries; a replica that crashes leaves entries that lapse after ``CONSOLE_TTL_S``.

Agents looking at the same chat see each other's names ("Bob is viewing"), so two people
do not answer at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

CONSOLE_TTL_S = 90.0  # the console pings every 25 s
RENEW_EVERY_S = 20.0
MAX_ID = 256


def consoles_key(agent: str) -> str:
    return f"handoff:consoles:{agent}"


def viewers_key(conversation_id: str) -> str:
    return f"handoff:viewers:{conversation_id}"


@dataclass
class Console:
    agent: str
    socket_id: str  # unique across replicas: the hub's node id and the socket
    viewing: str | None = None
    renewed: float = 0.0

    @property
    def viewer(self) -> str:
        return f"{self.agent}\n{self.socket_id}"


CONSOLES = web.AppKey("consoles", dict)  # socket -> Console, this replica's


def _services(app: web.Application):
    from handoff.app import SERVICES

    return app[SERVICES]


async def opened(app: web.Application, socket: web.WebSocketResponse, agent: str) -> None:
    services = _services(app)
    console = Console(agent, f"{services.hub.node}:{id(socket)}", renewed=time.time())
    app[CONSOLES][socket] = console
    await services.redis.zadd(consoles_key(agent), {console.socket_id: console.renewed + CONSOLE_TTL_S})


async def renew(app: web.Application, socket: web.WebSocketResponse) -> None:
    """The console is still there (it pinged): keep its entries from lapsing."""
    console = app[CONSOLES].get(socket)
    now = time.time()
    if console is None or now - console.renewed < RENEW_EVERY_S:
        return
    console.renewed = now
    pipe = _services(app).redis.pipeline(transaction=False)
    pipe.zadd(consoles_key(console.agent), {console.socket_id: now + CONSOLE_TTL_S})
    if console.viewing:
        pipe.zadd(viewers_key(console.viewing), {console.viewer: now + CONSOLE_TTL_S})
    await pipe.execute()


async def closed(app: web.Application, socket: web.WebSocketResponse) -> bool:
    """Forget a closed console; ``True`` if it was its agent's last one on any replica."""
    console = app[CONSOLES].pop(socket, None)
    if console is None:
        return False
    redis = _services(app).redis
    if console.viewing:
        await redis.zrem(viewers_key(console.viewing), console.viewer)
        await _tell_viewers(app, console.viewing)
    key = consoles_key(console.agent)
    pipe = redis.pipeline(transaction=True)
    pipe.zrem(key, console.socket_id)
    pipe.zremrangebyscore(key, "-inf", time.time())
    pipe.zcard(key)
    return int((await pipe.execute())[-1]) == 0


async def viewers_of(app: web.Application, conversation_id: str) -> list[str]:
    raw = await _services(app).redis.zrangebyscore(viewers_key(conversation_id), time.time(), "+inf")
    return sorted({(m.decode() if isinstance(m, bytes) else str(m)).split("\n", 1)[0] for m in raw})


async def viewing(app: web.Application, socket: web.WebSocketResponse, conversation_id: Any) -> None:
    """A console opened ``conversation_id`` (``None``: closed it); tell the agents concerned."""
    console = app[CONSOLES].get(socket)
    if console is None:
        return
    cid = conversation_id if isinstance(conversation_id, str) and 0 < len(conversation_id) <= MAX_ID else None
    before, console.viewing = console.viewing, cid
    redis = _services(app).redis
    if before and before != cid:
        await redis.zrem(viewers_key(before), console.viewer)
    if cid:
        pipe = redis.pipeline(transaction=False)
        pipe.zremrangebyscore(viewers_key(cid), "-inf", time.time())
        pipe.zadd(viewers_key(cid), {console.viewer: time.time() + CONSOLE_TTL_S})
        pipe.expire(viewers_key(cid), int(CONSOLE_TTL_S) + 10)
        await pipe.execute()
    for changed in {before, cid} - {None}:
        await _tell_viewers(app, changed)


async def _tell_viewers(app: web.Application, conversation_id: str) -> None:
    """Everyone looking at the chat, on any replica, hears who is."""
    names = await viewers_of(app, conversation_id)
    payload = {"type": "viewers", "conversation_id": conversation_id, "agents": names}
    for agent in names:
        await _services(app).hub.send_to_agent(agent, payload)


def setup(app: web.Application) -> None:
    app[CONSOLES] = {}
