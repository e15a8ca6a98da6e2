"""Typing indicators between a widget customer and the agent who has their chat, and notes
written by other processes (a channel's "not delivered") pushed to the consoles.

The widget talks to Rasa's process and the console to this service, so the two meet on
Redis pub/sub (``keys.TYPING_CUSTOMER``, ``keys.TYPING_AGENT``): nothing is stored, and a
lost message is only a missed "is typing". The customer's typing reaches only the agent
the chat is assigned to; an agent's typing is relayed only for a chat they hold.
"""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from bot.pubsub import follow
from handoff import keys
from handoff.queue import ASSIGNED

log = logging.getLogger(__name__)

AGENT_TYPING_EVERY_S = 2.0  # an agent's "typing" goes to the customer at most this often


def _services(app: web.Application):
    from handoff.app import SERVICES

    return app[SERVICES]


async def relay_customer_typing(app: web.Application) -> None:
    """Follow ``typing:customer`` (tell the chat's agent) and ``notes:push`` (every console)."""
    services = _services(app)

    async def handle(channel: str, data: dict) -> None:
        conversation_id = data.get("conversation_id")
        if not isinstance(conversation_id, str):
            return
        if channel == keys.NOTES_PUSH:  # e.g. "not delivered", from a channel
            await services.hub.broadcast({"type": "note", "conversation_id": conversation_id, "note": data.get("note")})
            return
        chat = await services.queue.get(conversation_id)
        if chat is not None and chat.state == ASSIGNED and chat.agent:
            await services.hub.send_to_agent(chat.agent, {"type": "typing", "conversation_id": conversation_id})

    await follow(services.redis, (keys.TYPING_CUSTOMER, keys.NOTES_PUSH), handle, "customer typing relay")


async def agent_typing(
    app: web.Application, socket: web.WebSocketResponse, agent: str, conversation_id: object
) -> None:
    """The agent types in ``conversation_id``'s reply box: the customer's widget shows it."""
    sent = app[TYPING_SENT]
    now = time.monotonic()
    if not isinstance(conversation_id, str) or now - sent.get(socket, 0.0) < AGENT_TYPING_EVERY_S:
        return
    sent[socket] = now
    services = _services(app)
    chat = await services.queue.get(conversation_id)
    if chat is None or chat.state != ASSIGNED or chat.agent != agent:
        return
    await services.redis.publish(keys.TYPING_AGENT, json.dumps({"conversation_id": conversation_id, "agent": agent}))


def forget(app: web.Application, socket: web.WebSocketResponse) -> None:
    app[TYPING_SENT].pop(socket, None)


TYPING_SENT = web.AppKey("typing_sent", dict)


def add_routes(app: web.Application) -> None:
    app[TYPING_SENT] = {}
