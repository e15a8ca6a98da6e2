"""The handoff service: agent console, queue API and live events (aiohttp).

Run with ``python -m handoff`` (``make run`` starts it). It needs Redis and Rasa's HTTP
API token (``RASA_TOKEN``), and never talks to a customer's channel directly: everything a
customer sees goes through Rasa.

What a caller can rely on under attack and failure:

* A session is valid only while its agent exists with the password it logged in with
  (``Agents.session_agent``); open WebSockets of an ended session are closed within
  ``SESSION_SWEEP_SECONDS``.
* A POST, and the WebSocket, with an ``Origin`` other than the console's own get 403.
* Logins are throttled (``LoginGuard``) and checked off the event loop.
* While Redis is unreachable every request that needs it answers 503 with a JSON error,
  and ``/health`` says 503 with the reason (also while the stream reader is not reading).
* Claim, hand back and close may be retried after a crash or a lost answer: the same
  agent's retry succeeds, and the customer hears the greeting, the hand-back or the
  rating question once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import yaml
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.business_hours import BusinessHours, load_business_hours
from bot.csat import CSAT_SLOT
from bot.messages import csat_buttons, say
from bot.settings import Settings
from bot.transcript import transcript, turn_from_event
from handoff import consoles, dashboard, editor, followups, keys, live, media, notes, presence, routing, search
from handoff.agents import SESSION_TTL, AgentError, Agents, LoginBusy, LoginGuard
from handoff.events import EventConsumer, stop_task
from handoff.hub import Hub
from handoff.kpi_log import customer_history, record_event, trim_loop
from handoff.live import LIVE, Live, queue_snapshot
from handoff.notes import notes_of
from handoff.privacy import retention_loop
from handoff.queue import ASSIGNED, BOT, CLOSED, WAITING, Chat, Queue
from handoff.rasa_api import RasaApi, RasaError

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "console" / "static"
COOKIE = "handoff_session"
MAX_REPLY = 4000
MAX_SOCKET_MESSAGE = 4096  # the console only sends pings
SESSION_SWEEP_SECONDS = 2.0  # how soon an open console notices its session has ended
STEP_MARKER_SECONDS = 60  # a retry marker outlives one Rasa call (its timeout is 30 s)
REDIS_TIMEOUT = 5.0  # seconds for one Redis command (XREADGROUP blocks 1 s of it)
RETENTION_INTERVAL_S = 3600.0  # how often conversations idle past RETENTION_DAYS are deleted
WS_SESSION_ENDED = 4401  # close code: the console goes to the login page
ROLE_PAGES = ("/", "/editor", "/dashboard")  # each role's own page, in the order one is picked
PUBLIC_PATHS = ("/login", "/health", "/static/login.html", "/static/console.css", "/static/console.js")
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
# Control characters other than tab and newline, and lone surrogates (the tracker store
# cannot save those): not sent to a customer.
_UNSENDABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


@dataclass
class Services:
    settings: Settings
    redis: Redis
    queue: Queue
    agents: Agents
    hub: Hub
    rasa: RasaApi
    logins: LoginGuard
    hours: BusinessHours
    consumer: EventConsumer | None = None
    consumer_task: asyncio.Task | None = None
    kpi_consumer: EventConsumer | None = None
    # Every open console socket and the session token it was opened with.
    sockets: dict[web.WebSocketResponse, str] = field(default_factory=dict)


SERVICES = web.AppKey("services", Services)
PUBLIC_ORIGIN = web.AppKey("public_origin", str)  # "" when the request's Host decides
AGENT = "agent"  # request key: the logged-in agent's name


# --- sessions and origin -----------------------------------------------------------------


async def _agent_of(request: web.Request) -> str | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    return await request.app[SERVICES].agents.session_agent(token)


def console_origin(public_url: str) -> str:
    """``scheme://host[:port]`` of a public URL, lower case; ``""`` for none."""
    if not public_url:
        return ""
    parts = urlsplit(public_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"HANDOFF_PUBLIC_URL must look like https://console.example.com, got {public_url!r}")
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(request: web.Request) -> bool:
    """A request without ``Origin`` is not from a browser page; one with it must come from
    the console's own origin: ``HANDOFF_PUBLIC_URL`` when set, else the request's Host (so
    another port on the same host, a "same-site" page, is refused)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    public = request.app[PUBLIC_ORIGIN]
    if public:
        return origin.strip().lower() == public
    parts = urlsplit(origin.strip())
    return parts.scheme in ("http", "https") and bool(parts.netloc) and parts.netloc.lower() == request.host.lower()


@web.middleware
async def origin_middleware(request: web.Request, handler):
    if (request.method == "POST" or request.path == "/ws") and not origin_allowed(request):
        return web.json_response({"error": "cross-origin request refused"}, status=403)
    return await handler(request)


@web.middleware
async def redis_errors(request: web.Request, handler):
    """Redis down is "try again", not a crash: 503 with a JSON error."""
    try:
        return await handler(request)
    except REDIS_DOWN as exc:
        log.warning("%s %s: Redis unreachable: %s", request.method, request.path, exc)
        return web.json_response(
            {"error": "The console cannot reach its database right now; try again in a moment."},
            status=503,
            headers={"Retry-After": "5"},
        )


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
    needed = required_role(request.path)
    if needed is not None and needed not in await request.app[SERVICES].agents.roles(agent):
        if request.path in ROLE_PAGES:  # an editor who opens the console lands on their own page
            roles = await request.app[SERVICES].agents.roles(agent)
            other = next((page for page in ROLE_PAGES if required_role(page) in roles), None)
            if other is not None:
                raise web.HTTPFound(other)
        if request.path.startswith("/api/") or request.path == "/ws":
            return web.json_response({"error": f"this needs the {needed} role"}, status=403)
        return web.Response(text=f"Your account does not have the {needed} role.", status=403)
    return await handler(request)


def required_role(path: str) -> str | None:
    """The role a path needs (``None``: any signed-in account, e.g. ``/api/me``)."""
    if path == "/editor" or path.startswith("/api/editor/") or path.startswith("/static/editor"):
        return "editor"
    if path in ("/dashboard", "/api/kpis", "/api/kpis.csv", "/api/live", "/vendor/chart.js") or path.startswith(
        "/static/dashboard"
    ):
        return "lead"
    if path in ("/", "/ws", "/api/queue", "/api/canned", "/api/me/status", "/api/teams", "/api/search") or (
        path.startswith(("/api/chats/", "/api/media/"))
    ):
        return "agent"
    return None


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
    """The login form posts here; a client asking for JSON gets status codes instead of
    redirects (401 wrong password, 429 with Retry-After when it must wait)."""
    services = request.app[SERVICES]
    form = await request.post()
    name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
    address = client_address(request, services.settings.proxies_count)
    decision = await services.logins.attempt(name, address)
    if not decision.allowed:
        return _login_refused(request, decision.retry_after)
    try:
        ok = bool(name and password) and await services.agents.verify(name, password)
    except LoginBusy:
        return _login_refused(request, 2.0)
    if not ok:  # already counted by attempt()
        if _wants_json(request):
            return web.json_response({"error": "wrong name or password"}, status=401)
        raise web.HTTPFound("/login?error=1")
    try:
        await services.agents.set_status(name, "online")
    except AgentError:  # removed while the password was being checked
        raise web.HTTPFound("/login?error=1") from None
    await services.logins.succeeded(name, address)
    token = await services.agents.start_session(name)
    response = web.json_response({"ok": True, "name": name}) if _wants_json(request) else web.HTTPFound("/")
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="Strict", secure=services.settings.cookie_secure, max_age=SESSION_TTL
    )
    await live.queue_changed(request.app)
    if isinstance(response, web.HTTPException):
        raise response
    return response


def client_address(request: web.Request, proxies: int) -> str:
    """Who is logging in, for the per-address throttle: the TCP peer, or behind ``proxies``
    load balancers (``PROXIES_COUNT``) the address the nearest one saw. Entries further left in
    X-Forwarded-For were written by the client and are not used."""
    if proxies > 0:
        hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.remote or "unknown"


def _wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def _login_refused(request: web.Request, retry_after: float) -> web.Response:
    seconds = max(1, int(retry_after + 0.999))
    headers = {"Retry-After": str(seconds)}
    if _wants_json(request):
        error = f"Too many sign-in attempts; try again in {seconds} s."
        return web.json_response({"error": error}, status=429, headers=headers)
    raise web.HTTPFound(f"/login?error=locked&retry={seconds}", headers=headers)


async def logout(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    token = request.cookies.get(COOKIE)
    if token:
        await services.agents.end_session(token)
    with contextlib.suppress(AgentError):
        await services.agents.set_status(request[AGENT], "offline")
        if await services.queue.return_chats_of(request[AGENT]):  # first in line for the others
            routing.poke(request.app)
            await live.queue_changed(request.app)
    response = web.HTTPFound("/login")
    response.del_cookie(COOKIE)
    raise response


async def health(request: web.Request) -> web.Response:
    """200 only while Redis answers and the event stream is being read; else 503 and why."""
    services = request.app[SERVICES]
    try:
        await asyncio.wait_for(services.redis.ping(), 2)
    except (*REDIS_DOWN, asyncio.TimeoutError, OSError) as exc:
        return _down(f"Redis unreachable: {exc or type(exc).__name__}")
    consumer, task = services.consumer, services.consumer_task
    if consumer is None or task is None or task.done():
        return _down("the event stream reader is not running")
    problem = consumer.problem()
    if problem:
        return _down(problem)
    return web.json_response({"status": "ok", "events_handled": consumer.handled})


def _down(reason: str) -> web.Response:
    return web.json_response({"status": "down", "reason": reason}, status=503)


# --- API ------------------------------------------------------------------------------------


async def me(request: web.Request) -> web.Response:
    agent = await request.app[SERVICES].agents.get(request[AGENT])
    if agent is None:
        return web.json_response({"error": "agent removed"}, status=401)
    return web.json_response(agent.as_json())


async def set_status(request: web.Request) -> web.Response:
    body = await _json(request)
    services = request.app[SERVICES]
    try:
        agent = await services.agents.set_status(request[AGENT], str(body.get("status")))
    except AgentError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    if agent.status != "online" and await services.queue.return_chats_of(agent.name):
        agent = await services.agents.get(agent.name) or agent  # their chats wait again, first in line
    routing.poke(request.app)
    await live.queue_changed(request.app)
    live.positions_changed(request.app)
    return web.json_response(agent.as_json())


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
    card = {**json.loads(chat.card.to_json()), "team": chat.team}
    card["history"] = await customer_history(services.redis, conversation_id)  # past conversations
    body = {
        "card": card,
        "transcript": transcript(tracker),
        "notes": await notes_of(services.redis, conversation_id),
        "viewers": await consoles.viewers_of(request.app, conversation_id),
        "state": chat.state,
        "agent": chat.agent,
        "offered_to": chat.offered_to,
        "contact": chat.contact if chat.followup == "open" else None,
    }
    if chat.state == CLOSED and chat.agent == request[AGENT]:
        body["suggestion"] = editor.suggestion_from(tracker)  # "suggest for the knowledge base"
    return web.json_response(body)


async def claim(request: web.Request) -> web.Response:
    """Take a chat and greet the customer. The agent who holds it already may retry (after
    a crash or a lost answer): 200 with ``already``, and the greeting goes out if it has not."""
    services = request.app[SERVICES]
    conversation_id, agent = request.match_info["id"], request[AGENT]
    chat = await services.queue.get(conversation_id)
    if chat is None:
        return web.json_response({"error": "no such chat"}, status=404)
    if chat.state == WAITING:
        me, everyone = await services.agents.get(agent), await services.agents.all()
        if me is not None and not routing.may_take(me, chat, everyone, routing.teams_of(request.app)):
            teams = routing.teams_of(request.app)
            need = f"the {teams.label(routing.team_of(chat, teams))} team, in {chat.card.language or 'any language'}"
            return web.json_response({"error": f"This chat is for {need}; someone who has that is online."}, status=409)
    result = await services.queue.claim(conversation_id, agent)
    if not (result.ok or result.already):
        if result.state == "no agent":
            return web.json_response({"error": "agent removed"}, status=401)
        if result.state == "full":
            message = "You are at your chat limit; close or hand back a chat first."
        elif result.state == ASSIGNED:
            message = f"{result.agent} already took this chat."
        else:
            message = f"This chat is no longer waiting ({result.state})."
        return web.json_response({"error": message}, status=409)
    greeted = await greet_once(request.app, conversation_id, agent)
    await _chat_changed(request.app, conversation_id, ASSIGNED, agent)
    return web.json_response({"ok": True, "already": result.already, "greeted": greeted})


async def greet_once(app: web.Application, conversation_id: str, agent: str) -> bool:
    """Send the "this is {agent}" greeting unless it went out for this assignment already.

    ``greeted`` is recorded on the chat only after Rasa took the message; ``greeting_sent``
    just before sending, so a retry after a crash in between looks in the transcript for
    the greeting (it carries the assignment time) instead of sending it twice. A SET NX
    marker keeps two concurrent retries from both sending. ``True`` once it is out.
    """
    services = app[SERVICES]
    chat_key = keys.chat(conversation_id)
    if (await services.redis.hget(chat_key, "greeted")) is not None:
        return True
    marker = keys.chat_step(conversation_id, "greeting")
    if not await services.redis.set(marker, agent, nx=True, ex=STEP_MARKER_SECONDS):
        return False  # another request is sending it right now
    try:
        greeted, sent, assigned_at = await services.redis.hmget(chat_key, "greeted", "greeting_sent", "assigned_at")
        if greeted is not None:
            return True
        assignment = _s(assigned_at or b"")
        if sent is not None and _greeting_in(await services.rasa.tracker(conversation_id), assignment):
            await services.redis.hset(chat_key, "greeted", repr(time.time()))
            return True
        chat = await services.queue.get(conversation_id)
        text = say("agent_joined", chat.card.language if chat else None, agent=agent)
        event = {
            "event": "bot",
            "text": text,
            "timestamp": time.time(),
            "metadata": {"agent": agent, "greeting": assignment},
        }
        await services.redis.hset(chat_key, "greeting_sent", repr(time.time()))
        await services.rasa.append(conversation_id, [event])
        await services.redis.hset(chat_key, "greeted", repr(time.time()))
        return True
    except RasaError as exc:
        log.warning("greeting for %s not sent (a retry of the claim sends it): %s", conversation_id, exc)
        return False
    finally:
        await services.redis.delete(marker)


def _greeting_in(tracker: dict, assignment: str) -> bool:
    return any(
        event.get("event") == "bot" and (event.get("metadata") or {}).get("greeting") == assignment
        for event in tracker.get("events") or []
    )


def _bot_resumed(tracker: dict) -> bool:
    """Is the latest pause/resume in the tracker a resume (the bot is talking again)?"""
    for event in reversed(tracker.get("events") or []):
        if event.get("event") in ("pause", "resume"):
            return event["event"] == "resume"
    return False


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
    body = await _json(request)
    text = _UNSENDABLE.sub("", str(body.get("text") or "")).strip()
    if not text or len(text) > MAX_REPLY:
        return web.json_response({"error": f"a reply needs 1 to {MAX_REPLY} characters"}, status=400)
    reply_id = body.get("id")
    if reply_id is not None and (not isinstance(reply_id, str) or not 0 < len(reply_id) <= 64):
        return web.json_response({"error": "a reply id is a string of 1 to 64 characters"}, status=400)
    services = request.app[SERVICES]
    try:
        if reply_id:
            # The console sends a retry with the same id: if the first attempt reached the
            # transcript (only its confirmation was lost), the customer must not get it twice.
            marker = keys.reply_sent(chat.conversation_id, reply_id)
            first_try = await services.redis.set(marker, "1", nx=True, ex=24 * 3600)
            if not first_try and await services.rasa.has_reply(chat.conversation_id, reply_id):
                return web.json_response({"ok": True, "duplicate": True})
        await services.rasa.say(chat.conversation_id, text, agent=request[AGENT], reply_id=reply_id)
    except RasaError as exc:
        return web.json_response({"error": f"not delivered: {exc}"}, status=502)
    return web.json_response({"ok": True})


async def hand_back(request: web.Request) -> web.Response:
    return await _end(request, BOT)


async def close(request: web.Request) -> web.Response:
    return await _end(request, CLOSED)


async def _end(request: web.Request, state: str) -> web.Response:
    """Give the conversation back to the bot: it greets again, or asks for a rating.

    Safe to retry. Rasa first, then the release in Redis: a retry after the release
    answers 200 with ``already``; a retry after Rasa took the events but before the
    release (``ending`` is on the chat) finds the bot resumed in the transcript and only
    releases, so the customer hears it once. A SET NX marker keeps two clicks apart.
    """
    services = request.app[SERVICES]
    conversation_id, agent = request.match_info["id"], request[AGENT]
    chat = await services.queue.get(conversation_id)
    if chat is not None and chat.state == state and chat.agent == agent:
        return web.json_response({"ok": True, "already": True})
    chat = await _owned(request)
    if isinstance(chat, web.Response):
        return chat
    marker = keys.chat_step(conversation_id, "end")
    if not await services.redis.set(marker, agent, nx=True, ex=STEP_MARKER_SECONDS):
        return web.json_response({"error": "this chat is being handed back or closed already"}, status=409)
    language = chat.card.language
    if state == CLOSED:
        text, buttons = say("csat_question", language), csat_buttons()
    else:
        text, buttons = say("back_to_bot", language), None
    try:
        ending = _s(await services.redis.hget(keys.chat(conversation_id), "ending") or b"")
        if ending != state or not _bot_resumed(await services.rasa.tracker(conversation_id)):
            await services.redis.hset(keys.chat(conversation_id), "ending", state)
            await services.rasa.resume_with(
                conversation_id,
                text,
                buttons,
                ended={"handoff_end": state, "agent": agent},
                slots={CSAT_SLOT: {"asked": time.time()}} if state == CLOSED else None,
            )
        await services.queue.release(conversation_id, state)
    except RasaError as exc:
        return web.json_response({"error": f"Rasa did not take it back: {exc}"}, status=502)
    finally:
        await services.redis.delete(marker)
    await _chat_changed(request.app, conversation_id, state, chat.agent)
    return web.json_response({"ok": True, "already": False})


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
    socket_ = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_SOCKET_MESSAGE)
    await socket_.prepare(request)
    services, agent = request.app[SERVICES], request[AGENT]
    services.hub.add(agent, socket_)
    services.sockets[socket_] = request.cookies.get(COOKIE, "")
    try:
        await consoles.opened(request.app, socket_, agent)
        await services.agents.connected(agent)
        await socket_.send_json(await queue_snapshot(request.app, agent))
        async for message in socket_:
            # The console says which chat it shows, so others looking at it see the name.
            if message.type == aiohttp.WSMsgType.TEXT:
                try:
                    data = json.loads(message.data)
                except ValueError:
                    continue
                if not isinstance(data, dict):
                    continue
                await consoles.renew(request.app, socket_)
                if data.get("type") == "viewing":
                    await consoles.viewing(request.app, socket_, data.get("conversation_id"))
                elif data.get("type") == "typing":
                    await presence.agent_typing(request.app, socket_, agent, data.get("conversation_id"))
    except REDIS_DOWN as exc:
        log.warning("console socket of %s closed: Redis unreachable: %s", agent, exc)
        await socket_.close(code=aiohttp.WSCloseCode.TRY_AGAIN_LATER, message=b"database unreachable")
    finally:
        services.sockets.pop(socket_, None)
        services.hub.remove(agent, socket_)
        presence.forget(request.app, socket_)
        last = False
        with contextlib.suppress(Exception):
            last = await consoles.closed(request.app, socket_)
        if last:
            # Nobody is looking at this agent's console on any replica: don't promise
            # customers a wait that this agent would be counted in.
            with contextlib.suppress(*REDIS_DOWN):
                await services.agents.disconnected(agent)
            with contextlib.suppress(Exception):
                await live.queue_changed(request.app)
    return socket_


async def end_revoked_sockets(app: web.Application) -> None:
    """Close every open console whose session ended (password changed, agent removed,
    logged out or expired), every ``SESSION_SWEEP_SECONDS``; the CLI that changes an
    account runs in another process, so the service looks rather than waits to be told."""
    services = app[SERVICES]
    while True:
        await asyncio.sleep(SESSION_SWEEP_SECONDS)
        try:
            for socket_, token in list(services.sockets.items()):
                if not socket_.closed and (not token or await services.agents.session_agent(token) is None):
                    await socket_.close(code=WS_SESSION_ENDED, message=b"session ended")
        except REDIS_DOWN:
            pass  # Redis is down: not a reason to throw agents out; look again later
        except Exception:
            log.exception("checking open consoles' sessions failed; trying again")


# --- live updates ---------------------------------------------------------------------------


async def _chat_changed(app: web.Application, conversation_id: str, state: str, agent: str | None) -> None:
    routing.poke(app)  # a slot came free, or a chat waits again
    await app[SERVICES].hub.broadcast(
        {"type": "chat_state", "conversation_id": conversation_id, "state": state, "agent": agent}
    )
    await live.queue_changed(app)
    live.positions_changed(app)


# The tracker events agents are shown (turns) or that start a wait (pause): every other
# event (actions, slots, featurization; most of the stream) is acknowledged without a read.
AGENT_EVENTS = frozenset(("user", "bot", "pause", "resume"))


async def on_stream_event(app: web.Application, fields: dict[str, str]) -> None:
    """One tracker event from Rasa: push it to whoever must see it."""
    if fields.get("event") not in AGENT_EVENTS:
        return
    services = app[SERVICES]
    conversation_id = fields.get("sender_id", "")
    try:
        event = json.loads(fields.get("data") or "{}")
    except (ValueError, TypeError, RecursionError):
        log.error("stream entry for %r carries no JSON event; skipped", conversation_id)
        return  # retrying cannot fix it: acknowledge it rather than keep it pending
    if not isinstance(event, dict):
        return
    chat = await services.queue.get(conversation_id)
    if chat is None:
        return
    if event.get("event") == "pause" and chat.state == WAITING:
        routing.poke(app)  # offer it to someone with the skills
        await live.queue_changed(app)  # a new chat is waiting: every console hears it
        live.positions_changed(app)
        return
    if event.get("event") == "user" and chat.followup == "offered":
        with contextlib.suppress(RasaError):
            await followups.on_customer_message(app, chat, event)
    turn = turn_from_event(event)
    if turn is None or chat.state not in (WAITING, ASSIGNED):
        return
    payload = {"type": "message", "conversation_id": conversation_id, "message": turn}
    if chat.state == ASSIGNED and chat.agent:
        if turn["role"] == "customer":
            await services.redis.hincrby(keys.unread(chat.agent), conversation_id, 1)
        await services.hub.send_to_agent(chat.agent, payload)
        if turn["role"] == "customer":
            await live.queue_changed(app, chat.agent)  # the unread count
    else:
        await services.hub.broadcast(payload)


# --- wiring ---------------------------------------------------------------------------------


async def _json(request: web.Request) -> dict:
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # bad JSON, bad UTF-8, or nested too deep to parse
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


def redis_client(settings: Settings) -> Redis:
    """The service's one Redis pool (timeouts, and a retry on a connection Redis dropped)."""
    return settings.redis.client(timeout=REDIS_TIMEOUT)


def create_app(settings: Settings, public_url: str | None = None) -> web.Application:
    """``public_url``: where agents open the console (``HANDOFF_PUBLIC_URL``); requests
    from any other origin are refused. Unset, the request's own Host is the origin."""
    if not settings.rasa_token:
        raise ValueError("RASA_TOKEN is required: the handoff service reaches customers through Rasa's HTTP API")
    if public_url is None:
        public_url = settings.handoff_public_url
    app = web.Application(
        middlewares=[security_headers, redis_errors, origin_middleware, auth_middleware], client_max_size=64 * 1024
    )
    app[PUBLIC_ORIGIN] = console_origin(public_url)
    app[LIVE] = Live()
    consoles.setup(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        redis = redis_client(settings)
        session = aiohttp.ClientSession()
        services = Services(
            settings=settings,
            redis=redis,
            queue=Queue(redis),
            agents=Agents(redis),
            hub=Hub(redis),
            rasa=RasaApi(session, rasa_api_url(settings), settings.rasa_token or ""),
            logins=LoginGuard(redis),
            hours=load_business_hours(settings.business_hours_file),
        )
        app[SERVICES] = services

        async def handle(fields: dict[str, str]) -> None:
            await on_stream_event(app, fields)

        idle_ms = int(settings.stream_claim_idle_seconds * 1000)
        services.consumer = EventConsumer(redis, consumer_name(settings), handle, claim_idle_ms=idle_ms)
        services.consumer_task = asyncio.create_task(services.consumer.run())

        async def record(fields: dict[str, str]) -> None:
            await record_event(redis, fields)

        # The team lead's figures: every event of every conversation, in a group of its own.
        services.kpi_consumer = EventConsumer(
            redis, consumer_name(settings), record, group=keys.KPI_GROUP, claim_idle_ms=idle_ms
        )
        kpi_task = asyncio.create_task(services.kpi_consumer.run())
        kpi_trim = asyncio.create_task(trim_loop(redis, settings.kpi_retention_days))
        router = asyncio.create_task(routing.route_loop(app))
        consoles = asyncio.create_task(live.consoles_loop(app))
        positions = asyncio.create_task(live.positions_loop(app))

        async def queue_elsewhere(agent: str | None) -> None:
            live.mark_stale(app, agent)

        shared = asyncio.create_task(services.hub.follow(queue_elsewhere))
        typing_relay = asyncio.create_task(presence.relay_customer_typing(app))
        sweeper = asyncio.create_task(end_revoked_sockets(app))
        # RETENTION_DAYS: conversations idle longer are deleted about hourly (0: kept).
        retention = asyncio.create_task(retention_loop(redis, settings.retention_days, RETENTION_INTERVAL_S))
        yield
        for task in (
            services.consumer_task,
            kpi_task,
            kpi_trim,
            router,
            consoles,
            positions,
            shared,
            typing_relay,
            sweeper,
            retention,
        ):
            await stop_task(task)
        await services.hub.close_all()
        await session.close()
        with contextlib.suppress(*REDIS_DOWN):
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
    editor.add_routes(app)
    dashboard.add_routes(app)
    routing.add_routes(app, settings.teams_file)
    notes.add_routes(app)
    followups.add_routes(app)
    presence.add_routes(app)
    media.add_routes(app)
    search.add_routes(app)
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
