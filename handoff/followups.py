"""Follow-ups: a customer who would rather be contacted than wait in the chat.

When the bot hands off out of hours or with nobody online, it invites the customer to leave
an e-mail address or phone number (``actions/handoff.py`` marks the chat ``followup:
offered``). The bot is paused then, so the customer's messages reach only this service (the
event stream): the first one holding a valid address (``bot/contact.py``) makes the chat a
follow-up, the customer is told where they will be contacted, and the console lists it
with the whole transcript. An agent answers (in the chat, or by mail or phone) and marks
it done, which gives the conversation back to the bot without a rating question.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from bot.contact import contact_in, looks_like_contact
from bot.messages import say
from handoff import keys
from handoff.queue import ASSIGNED, CLOSED, WAITING, Chat

log = logging.getLogger(__name__)


def _services(app: web.Application):
    from handoff.app import SERVICES

    return app[SERVICES]


async def on_customer_message(app: web.Application, chat: Chat, event: dict[str, Any]) -> None:
    """Read a waiting customer's message for the address they were invited to leave."""
    if chat.state != WAITING or chat.followup != "offered":
        return
    text = str(event.get("text") or "")
    if text.startswith("/") or (event.get("metadata") or {}).get("attachment"):
        return  # a button, or a file: not an address
    services = _services(app)
    found = contact_in(text)
    language = chat.card.language
    if found is None:
        if looks_like_contact(text):
            await services.rasa.say(chat.conversation_id, say("followup_invalid", language))
        return
    kind, value = found
    updated = await services.redis.hset(
        keys.chat(chat.conversation_id),
        mapping={"followup": "open", "contact": value, "contact_kind": kind, "followup_at": repr(time.time())},
    )
    log.info("follow-up left for %s (%s, %d fields)", chat.conversation_id, kind, updated)
    await services.rasa.say(chat.conversation_id, say("followup_saved", language, contact=value))
    from handoff.live import queue_changed

    await queue_changed(app)


async def done(request: web.Request) -> web.Response:
    """Mark a follow-up done: the customer was answered; the bot takes the conversation back."""
    from handoff.app import AGENT, _chat_changed

    services = _services(request.app)
    conversation_id, agent = request.match_info["id"], request[AGENT]
    chat = await services.queue.get(conversation_id)
    if chat is None or not chat.contact:
        return web.json_response({"error": "no such follow-up"}, status=404)
    if chat.state == ASSIGNED and chat.agent != agent:
        return web.json_response({"error": f"{chat.agent} has this chat"}, status=409)
    if chat.state not in (WAITING, ASSIGNED):
        return web.json_response({"ok": True, "already": True})
    if chat.state == WAITING and not (await services.queue.claim(conversation_id, agent)).ok:
        return web.json_response({"error": "someone else took it meanwhile"}, status=409)
    await services.rasa.resume_with(
        conversation_id,
        say("back_to_bot", chat.card.language),
        ended={"handoff_end": CLOSED, "agent": agent, "followup": True},
    )
    await services.queue.release(conversation_id, CLOSED)
    await services.redis.hset(keys.chat(conversation_id), "followup", "done")
    await _chat_changed(request.app, conversation_id, CLOSED, agent)
    return web.json_response({"ok": True})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/chats/{id}/followup/done", done)
