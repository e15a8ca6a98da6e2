"""The handoff service: agent console, queue API and live events (aiohttp).

Run with ``python -m handoff`` (``make run`` starts it). It needs Redis and Rasa's HTTP
API token (``RASA_TOKEN``), and never talks to a customer's channel directly: everything a
customer sees goes through Rasa.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web
from redis.asyncio import Redis

from bot.messages import csat_buttons, say
from bot.settings import Settings
from bot.transcript import transcript, turn_from_event
from handoff import keys
from handoff.agents import AgentError, Agents
from handoff.events import EventConsumer
from handoff.hub import Hub
from handoff.queue import ASSIGNED, BOT, CLOSED, WAITING, Chat, Queue, estimate_wait_minutes
from handoff.rasa_api import RasaApi, RasaError

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "console" / "static"
COOKIE = "handoff_session"
SESSION_TTL = 12 * 3600
MAX_REPLY = 4000
PUBLIC_PATHS = ("/login", "/health", "/static/login.html", "/static/console.css", "/static/console.js")


@dataclass
class Services:
    settings: Settings
    redis: Redis
    queue: Queue
    agents: Agents
    hub: Hub
    rasa: RasaApi
    consumer: EventConsumer | None = None


SERVICES = web.AppKey("services", Services)
AGENT = "agent"  # request key: the logged-in agent's name


# --- sessions -------------------------------------------------------------------------


async def _agent_of(request: web.Request) -> str | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    name = await request.app[SERVICES].redis.get(keys.session(token))
    return name.decode() if isinstance(name, bytes) else name


@web.middleware
async def auth_middleware(request: web.Request, handler):
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    agent = await _agent_of(request)
    if agent is None:
        if request.path.startswith("/api/") or request.path == "/ws":
            return web.json_response({"error": "not logged in"}, status=401)
        raise web.HTTPFound("/login")
    # A cross-site form cannot set this header, and a cross-site script cannot send it
    # without a CORS preflight we never grant: no CSRF on the JSON API.
    api_post = request.method == "POST" and request.path.startswith("/api/")
    if api_post and request.headers.get("X-Requested-With") != "console":
        return web.json_response({"error": "missing X-Requested-With: console"}, status=403)
    request[AGENT] = agent
    return await handler(request)


@web.middleware
async def security_headers(request: web.Request, handler):
    response = await handler(request)
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


# --- pages and login ----------------------------------------------------------------------


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def login_page(request: web.Request) -> web.StreamResponse:
    if await _agent_of(request):
        raise web.HTTPFound("/")
    return web.FileResponse(STATIC / "login.html")


async def login(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    form = await request.post()
    name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
    if not (name and password and await services.agents.verify(name, password)):
        raise web.HTTPFound("/login?error=1")
    token = secrets.token_urlsafe(32)
    await services.redis.set(keys.session(token), name, ex=SESSION_TTL)
    await services.agents.set_status(name, "online")
    response = web.HTTPFound("/")
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="Strict", secure=services.settings.cookie_secure, max_age=SESSION_TTL
    )
    await broadcast_queue(request.app)
    raise response


async def logout(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    token = request.cookies.get(COOKIE)
    if token:
        await services.redis.delete(keys.session(token))
    with contextlib.suppress(AgentError):
        await services.agents.set_status(request[AGENT], "offline")
    response = web.HTTPFound("/login")
    response.del_cookie(COOKIE)
    raise response


async def health(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    await services.redis.ping()
    return web.json_response({"status": "ok", "events_handled": services.consumer.handled if services.consumer else 0})


# --- API ------------------------------------------------------------------------------------


async def me(request: web.Request) -> web.Response:
    agent = await request.app[SERVICES].agents.get(request[AGENT])
    if agent is None:
        return web.json_response({"error": "agent removed"}, status=401)
    return web.json_response(agent.as_json())


async def set_status(request: web.Request) -> web.Response:
    body = await _json(request)
    try:
        agent = await request.app[SERVICES].agents.set_status(request[AGENT], str(body.get("status")))
    except AgentError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    await broadcast_queue(request.app)
    await update_positions(request.app)
    return web.json_response(agent.as_json())


async def queue_snapshot(app: web.Application, agent: str) -> dict:
    services = app[SERVICES]
    waiting = await services.queue.waiting()
    unread = await services.redis.hgetall(keys.unread(agent))
    unread = {_s(k): int(v) for k, v in unread.items()}
    mine = await services.queue.chats_of(agent)
    return {
        "type": "queue",
        "waiting": [chat.summary(position) for position, chat in enumerate(waiting, start=1)],
        "mine": [chat.summary(unread=unread.get(chat.conversation_id, 0)) for chat in mine],
    }


async def get_queue(request: web.Request) -> web.Response:
    return web.json_response(await queue_snapshot(request.app, request[AGENT]))


async def get_chat(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    conversation_id = request.match_info["id"]
    chat = await services.queue.get(conversation_id)
    if chat is None:
        return web.json_response({"error": "no such chat"}, status=404)
    try:
        tracker = await services.rasa.tracker(conversation_id)
    except RasaError as exc:
        return web.json_response({"error": str(exc)}, status=502)
    if chat.agent == request[AGENT]:
        await services.redis.hdel(keys.unread(request[AGENT]), conversation_id)
    card = {**json.loads(chat.card.to_json())}
    return web.json_response(
        {"card": card, "transcript": transcript(tracker), "state": chat.state, "agent": chat.agent}
    )


async def claim(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    conversation_id, agent = request.match_info["id"], request[AGENT]
    if await services.queue.get(conversation_id) is None:
        return web.json_response({"error": "no such chat"}, status=404)
    result = await services.queue.claim(conversation_id, agent)
    if not result.ok:
        if result.state == "full":
            message = "You are at your chat limit; close or hand back a chat first."
        elif result.state == ASSIGNED:
            message = f"{result.agent} already took this chat."
        else:
            message = f"This chat is no longer waiting ({result.state})."
        return web.json_response({"error": message}, status=409)
    chat = await services.queue.get(conversation_id)
    with contextlib.suppress(RasaError):
        greeting = say("agent_joined", chat.card.language if chat else None, agent=agent)
        await services.rasa.say(conversation_id, greeting, agent=agent)
    await _chat_changed(request.app, conversation_id, ASSIGNED, agent)
    return web.json_response({"ok": True})


async def _owned(request: web.Request) -> Chat | web.Response:
    chat = await request.app[SERVICES].queue.get(request.match_info["id"])
    if chat is None:
        return web.json_response({"error": "no such chat"}, status=404)
    if chat.state != ASSIGNED or chat.agent != request[AGENT]:
        return web.json_response({"error": "this chat is not assigned to you"}, status=409)
    return chat


async def reply(request: web.Request) -> web.Response:
    chat = await _owned(request)
    if isinstance(chat, web.Response):
        return chat
    text = str((await _json(request)).get("text") or "").strip()
    if not text or len(text) > MAX_REPLY:
        return web.json_response({"error": f"a reply needs 1 to {MAX_REPLY} characters"}, status=400)
    try:
        await request.app[SERVICES].rasa.say(chat.conversation_id, text, agent=request[AGENT])
    except RasaError as exc:
        return web.json_response({"error": f"not delivered: {exc}"}, status=502)
    return web.json_response({"ok": True})


async def hand_back(request: web.Request) -> web.Response:
    return await _end(request, BOT)


async def close(request: web.Request) -> web.Response:
    return await _end(request, CLOSED)


async def _end(request: web.Request, state: str) -> web.Response:
    """Give the conversation back to the bot: it greets again, or asks for a rating."""
    chat = await _owned(request)
    if isinstance(chat, web.Response):
        return chat
    services = request.app[SERVICES]
    language = chat.card.language
    if state == CLOSED:
        text, buttons = say("csat_question", language), csat_buttons()
    else:
        text, buttons = say("back_to_bot", language), None
    try:
        await services.rasa.resume_with(chat.conversation_id, text, buttons)
    except RasaError as exc:
        return web.json_response({"error": f"Rasa did not take it back: {exc}"}, status=502)
    await services.queue.release(chat.conversation_id, state)
    await _chat_changed(request.app, chat.conversation_id, state, chat.agent)
    return web.json_response({"ok": True})


async def canned(request: web.Request) -> web.Response:
    path = request.app[SERVICES].settings.canned_file
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        items = [{"title": str(i["title"]), "text": str(i["text"])} for i in data.get("responses", []) if "title" in i]
    except (OSError, yaml.YAMLError, TypeError, KeyError) as exc:
        log.error("canned responses in %s not readable: %s", path, exc)
        items = []
    return web.json_response(items)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    socket_ = web.WebSocketResponse(heartbeat=30)
    await socket_.prepare(request)
    services, agent = request.app[SERVICES], request[AGENT]
    services.hub.add(agent, socket_)
    await services.agents.connected(agent)
    try:
        await socket_.send_json(await queue_snapshot(request.app, agent))
        async for _ in socket_:
            pass  # the console only pings; everything flows server -> console
    finally:
        services.hub.remove(agent, socket_)
        if agent not in services.hub.agents:
            # Nobody is looking at this agent's console: don't promise customers a wait
            # that this agent would be counted in.
            await services.agents.disconnected(agent)
            with contextlib.suppress(Exception):
                await broadcast_queue(request.app)
    return socket_


# --- live updates ---------------------------------------------------------------------------


async def broadcast_queue(app: web.Application) -> None:
    hub = app[SERVICES].hub
    for agent in hub.agents:
        await hub.send_to_agent(agent, await queue_snapshot(app, agent))


async def update_positions(app: web.Application) -> None:
    """Tell every waiting customer whose place in the queue changed where they stand now."""
    services = app[SERVICES]
    agents_online, free_slots = await services.agents.availability()
    for position, chat in enumerate(await services.queue.waiting(), start=1):
        if not await services.queue.remember_position_told(chat.conversation_id, position):
            continue
        wait = estimate_wait_minutes(position, agents_online, free_slots, services.settings.avg_handle_minutes)
        language = chat.card.language
        text = say("position", language, position=position)
        if wait is not None:
            text += say("expected_wait", language, minutes=wait)
        with contextlib.suppress(RasaError):
            await services.rasa.say(chat.conversation_id, text)


async def _chat_changed(app: web.Application, conversation_id: str, state: str, agent: str | None) -> None:
    await app[SERVICES].hub.broadcast(
        {"type": "chat_state", "conversation_id": conversation_id, "state": state, "agent": agent}
    )
    await broadcast_queue(app)
    await update_positions(app)


async def on_stream_event(app: web.Application, fields: dict[str, str]) -> None:
    """One tracker event from Rasa: push it to whoever must see it."""
    services = app[SERVICES]
    conversation_id = fields.get("sender_id", "")
    event = json.loads(fields.get("data") or "{}")
    chat = await services.queue.get(conversation_id)
    if chat is None:
        return
    if event.get("event") == "pause" and chat.state == WAITING:
        await broadcast_queue(app)  # a new chat is waiting: every console hears it
        await update_positions(app)
        return
    turn = turn_from_event(event)
    if turn is None or chat.state not in (WAITING, ASSIGNED):
        return
    payload = {"type": "message", "conversation_id": conversation_id, "message": turn}
    if chat.state == ASSIGNED and chat.agent:
        if turn["role"] == "customer":
            await services.redis.hincrby(keys.unread(chat.agent), conversation_id, 1)
        await services.hub.send_to_agent(chat.agent, payload)
        if turn["role"] == "customer":
            await services.hub.send_to_agent(chat.agent, await queue_snapshot(app, chat.agent))
    else:
        await services.hub.broadcast(payload)


# --- wiring ---------------------------------------------------------------------------------


async def _json(request: web.Request) -> dict:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text='{"error": "body must be JSON"}', content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}', content_type="application/json")
    return body


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def rasa_api_url(settings: Settings) -> str:
    """Rasa's HTTP API as this host reaches it (a wildcard bind is reached on loopback)."""
    host = "127.0.0.1" if settings.rasa_host in ("0.0.0.0", "::", "") else settings.rasa_host
    return f"http://{host}:{settings.rasa_port}"


def consumer_name(settings: Settings) -> str:
    """Stable across restarts of the same replica, so it finds its own pending entries."""
    return os.environ.get("HANDOFF_CONSUMER") or f"{socket.gethostname()}-{settings.handoff_port}"


def create_app(settings: Settings) -> web.Application:
    if not settings.rasa_token:
        raise ValueError("RASA_TOKEN is required: the handoff service reaches customers through Rasa's HTTP API")
    app = web.Application(middlewares=[security_headers, auth_middleware], client_max_size=64 * 1024)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        address = settings.redis
        redis = Redis(host=address.host, port=address.port, db=address.db, password=address.password or None)
        session = aiohttp.ClientSession()
        services = Services(
            settings=settings,
            redis=redis,
            queue=Queue(redis),
            agents=Agents(redis),
            hub=Hub(),
            rasa=RasaApi(session, rasa_api_url(settings), settings.rasa_token or ""),
        )
        app[SERVICES] = services

        async def handle(fields: dict[str, str]) -> None:
            await on_stream_event(app, fields)

        services.consumer = EventConsumer(redis, consumer_name(settings), handle)
        task = asyncio.create_task(services.consumer.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await services.hub.close_all()
        await session.close()
        await redis.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/", index)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/health", health)
    app.router.add_get("/api/me", me)
    app.router.add_post("/api/me/status", set_status)
    app.router.add_get("/api/queue", get_queue)
    app.router.add_get("/api/chats/{id}", get_chat)
    app.router.add_post("/api/chats/{id}/claim", claim)
    app.router.add_post("/api/chats/{id}/reply", reply)
    app.router.add_post("/api/chats/{id}/handback", hand_back)
    app.router.add_post("/api/chats/{id}/close", close)
    app.router.add_get("/api/canned", canned)
    app.router.add_get("/ws", websocket)
    app.router.add_static("/static/", STATIC)
    return app


def main() -> None:
    from bot.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    started = time.monotonic()
    app = create_app(settings)
    log.info("handoff service starting on %s (%.1f s)", settings.handoff_url, time.monotonic() - started)
    web.run_app(app, host=settings.handoff_host, port=settings.handoff_port, print=None)
