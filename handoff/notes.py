"""Agents' internal notes on a conversation, and who is looking at which chat.

Notes are for agents only: they are never appended to the tracker, so no channel can send
them to the customer; the console shows them in the transcript, marked as notes. They go
with the chat when it is transferred, and with the conversation when it is exported or
erased (``handoff/privacy.py``).

Viewing: each console says which chat it has open over its WebSocket; agents looking at the
same chat see each other's names ("Bob is viewing"), so two people do not answer at once.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from handoff import keys

MAX_NOTE = 2000
MAX_NOTES = 200  # the latest notes kept per conversation
VIEWERS = web.AppKey("viewers", dict)


def _services(app: web.Application):
    from handoff.app import SERVICES

    return app[SERVICES]


def _clean(text: str) -> str:
    return "".join(ch for ch in text if ch in "\n\t" or ch.isprintable()).strip()[:MAX_NOTE]


async def add_note(redis: Redis, conversation_id: str, agent: str, text: str) -> dict[str, Any]:
    note = {"agent": agent, "at": time.time(), "text": _clean(text)}
    pipe = redis.pipeline(transaction=True)
    pipe.rpush(keys.notes(conversation_id), json.dumps(note, ensure_ascii=False))
    pipe.ltrim(keys.notes(conversation_id), -MAX_NOTES, -1)
    await pipe.execute()
    return note


async def notes_of(redis: Redis, conversation_id: str) -> list[dict[str, Any]]:
    out = []
    for raw in await redis.lrange(keys.notes(conversation_id), 0, -1):
        try:
            note = json.loads(raw)
        except (TypeError, ValueError):
            continue
        if isinstance(note, dict):
            out.append(note)
    return out


async def post_note(request: web.Request) -> web.Response:
    from handoff.app import AGENT, _json

    services = _services(request.app)
    conversation_id = request.match_info["id"]
    if await services.queue.get(conversation_id) is None:
        return web.json_response({"error": "no such chat"}, status=404)
    body = await _json(request)
    text = _clean(str(body.get("text") or ""))
    if not text:
        return web.json_response({"error": f"a note needs 1 to {MAX_NOTE} characters"}, status=400)
    note = await add_note(services.redis, conversation_id, request[AGENT], text)
    await services.hub.broadcast({"type": "note", "conversation_id": conversation_id, "note": note})
    return web.json_response({"ok": True, "note": note})


# --- who is viewing which chat ---------------------------------------------------------------


def viewers_of(app: web.Application, conversation_id: str) -> list[str]:
    return sorted({agent for agent, cid in app[VIEWERS].values() if cid == conversation_id})


async def viewing(app: web.Application, socket: web.WebSocketResponse, agent: str, conversation_id: Any) -> None:
    """A console opened ``conversation_id`` (``None``: closed it); tell the agents concerned."""
    cid = conversation_id if isinstance(conversation_id, str) and len(conversation_id) <= 256 else None
    before = app[VIEWERS].get(socket, (agent, None))[1]
    if cid is None:
        app[VIEWERS].pop(socket, None)
    else:
        app[VIEWERS][socket] = (agent, cid)
    for changed in {before, cid} - {None}:
        await _tell_viewers(app, changed)


async def left(app: web.Application, socket: web.WebSocketResponse) -> None:
    gone = app[VIEWERS].pop(socket, None)
    if gone and gone[1]:
        await _tell_viewers(app, gone[1])


async def _tell_viewers(app: web.Application, conversation_id: str) -> None:
    names = viewers_of(app, conversation_id)
    payload = {"type": "viewers", "conversation_id": conversation_id, "agents": names}
    by_agent: dict[str, bool] = defaultdict(bool)
    for agent, cid in list(app[VIEWERS].values()):
        by_agent[agent] |= cid == conversation_id
    for agent, looking in by_agent.items():
        if looking:
            await _services(app).hub.send_to_agent(agent, payload)


def add_routes(app: web.Application) -> None:
    app[VIEWERS] = {}
    app.router.add_post("/api/chats/{id}/notes", post_note)
