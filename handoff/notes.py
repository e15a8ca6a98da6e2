"""Agents' internal notes on a conversation.

Notes are for agents only: they are never appended to the tracker, so no channel can send
them to the customer; the console shows them in the transcript, marked as notes. They go
with the chat when it is transferred, and with the conversation when it is exported or
erased (``handoff/privacy.py``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from handoff import keys

MAX_NOTE = 2000
MAX_NOTES = 200  # the latest notes kept per conversation


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


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/chats/{id}/notes", post_note)
