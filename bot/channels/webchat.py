"""The website widget's channel: Rasa's socket.io channel, fixed, extended and made private.

* **Private sessions.** The server, never the client, creates a session: a random id
  (``webchat:<32 hex>``) and a token, an HMAC of the id with ``WEBCHAT_SECRET``. The widget
  keeps both and presents them to resume; a socket joins a conversation's room (and gets its
  history) only with a valid token, and every message goes to the conversation its socket
  was confirmed for, whatever ``session_id`` the client claims. Before this, any visitor
  could name a WhatsApp number or another visitor's id and read and write that transcript.
* Rasa 3.6 calls python-socketio's ``enter_room`` without ``await``; since
  python-socketio 5.9 that is a coroutine, so the socket never joined its session's room
  and nothing sent to the room (every bot reply, and every agent reply sent later through
  the HTTP API) reached the browser. Our ``session_request`` handler awaits it.
* After confirming a session it sends the conversation so far (``history``), so a page
  reload or a second tab shows everything.
* A customer message passes :class:`~bot.channels.guard.ChannelGuard` (clean text, length
  cap, rate limits) and is acknowledged only once Rasa has handled and stored it; a
  repeated ``client_id`` is answered as a duplicate only once the first copy is stored
  (:class:`~bot.channels.guard.MessageLedger`). ``{"ok": false, "retry_after": s}`` tells
  the widget to keep the message and send it again later.
* Replies go out as one event carrying text, buttons and, when a person wrote it, the
  agent's name, so the widget can show who is talking.
* socket.io rooms are shared by every Rasa process through Redis (:mod:`bot.channels.rooms`),
  so a reply reaches the widget whichever replica or Sanic worker sends it.
* The blueprint also serves the widget's files and a demo page under ``/webhooks/webchat/``.

Configured in ``credentials.yml`` as ``bot.channels.webchat.WebchatInput``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import inspect
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketIOInput, SocketIOOutput
from redis.exceptions import RedisError
from sanic import Blueprint, response
from sanic.request import Request

from bot.channels.guard import (
    TRY_AGAIN,
    Busy,
    ChannelGuard,
    InOrder,
    MessageLedger,
    clean_text,
    client_address,
    client_metadata,
    current_agent,
    guard_settings_from,
    stored_message_ids,
    strict_store_listener,
)
from bot.channels.meta import redis_for_channels
from bot.channels.rooms import share_rooms
from bot.pubsub import follow
from bot.ratelimit import RateLimiter
from bot.settings import ROOT, load_settings
from bot.transcript import transcript
from handoff.keys import TYPING_AGENT, TYPING_CUSTOMER

log = logging.getLogger(__name__)

CHANNEL = "webchat"
SESSION_ID = re.compile(r"^webchat:[0-9a-f]{32}$")
MAX_FRAME = 64 * 1024  # the largest socket.io packet accepted; a message is capped far below
MESSAGE_KEYS = ("text", "buttons", "quick_replies", "image", "attachment", "custom", "agent", "timestamp")
TYPING_EVERY_S = 2.0  # a customer's "typing" goes to the agent at most this often
MAX_TYPING_SOCKETS = 10_000
WIDGET = ROOT / "widget"
ASSETS: dict[str, tuple[Path, str]] = {
    "widget.js": (WIDGET / "src" / "widget.js", "application/javascript; charset=utf-8"),
    "widget.css": (WIDGET / "src" / "widget.css", "text/css; charset=utf-8"),
    "socket.io.min.js": (
        WIDGET / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js",
        "application/javascript; charset=utf-8",
    ),
    "demo": (WIDGET / "demo" / "index.html", "text/html; charset=utf-8"),
}


class SessionSigner:
    """Creates session ids and the tokens that prove a client was given them."""

    def __init__(self, secret: str) -> None:
        self.key = secret.encode()

    def token(self, session_id: str) -> str:
        return hmac.new(self.key, f"webchat-session:{session_id}".encode(), hashlib.sha256).hexdigest()

    def valid(self, session_id: Any, token: Any) -> bool:
        if not isinstance(session_id, str) or not isinstance(token, str) or not SESSION_ID.match(session_id):
            return False
        return hmac.compare_digest(self.token(session_id).encode(), token.encode("utf-8", "replace"))

    def new(self) -> tuple[str, str]:
        session_id = f"{CHANNEL}:{uuid.uuid4().hex}"
        return session_id, self.token(session_id)


def _client_address(environ: dict[str, Any] | None) -> str:
    """The peer's address (engine.io's Sanic driver puts a fixed 127.0.0.1 in REMOTE_ADDR)."""
    request = (environ or {}).get("sanic.request")
    return client_address(request) if request is not None else ""


class WebchatOutput(SocketIOOutput):
    @classmethod
    def name(cls) -> str:
        return CHANNEL

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        payload = {key: message[key] for key in MESSAGE_KEYS if message.get(key) is not None}
        if not payload.get("text") and not payload.get("buttons") and not payload.get("custom"):
            return
        await self.sio.emit(self.bot_message_evt, payload, room=recipient_id)


class WebchatInput(SocketIOInput):
    @classmethod
    def name(cls) -> str:
        return CHANNEL

    def get_output_channel(self) -> OutputChannel | None:
        if self.sio is None:
            return None
        return WebchatOutput(self.sio, self.bot_message_evt)

    async def history(self, session_id: str) -> list[dict[str, Any]]:
        """The conversation's current session as transcript turns, for a reloaded page."""
        try:
            tracker = await current_agent().tracker_store.retrieve(session_id)
        except Exception:  # a widget without history still works
            log.exception("no history for %s", session_id)
            return []
        if tracker is None:
            return []
        return transcript({"events": [event.as_dict() for event in tracker.events]})

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        blueprint = super().blueprint(on_new_message)
        strict_store_listener(blueprint)
        sio = self.sio
        assert sio is not None
        sio.eio.max_http_buffer_size = MAX_FRAME
        settings = load_settings()
        share_rooms(sio, settings.redis)  # a reply reaches the widget whichever Rasa process sends it
        secret = settings.webchat_secret
        if not secret:
            log.warning("WEBCHAT_SECRET is not set: widget sessions will not survive a restart of Rasa")
            secret = secrets.token_urlsafe(32)
        signer = SessionSigner(secret)
        redis = redis_for_channels()
        guard = ChannelGuard(redis, CHANNEL, guard_settings_from(settings))
        ledger = MessageLedger(redis, CHANNEL)
        # New sessions and resumes per client address, counted like messages: a page load is
        # one; a script minting thousands of sessions is not a customer.
        session_limit = RateLimiter(redis, "webchat:session", settings.rate_limit_address)
        in_order = InOrder()

        async def session_request(sid: str, data: dict | None = None, *_: Any) -> None:
            data = data if isinstance(data, dict) else {}
            address = _client_address(sio.get_environ(sid, namespace=self.namespace))
            try:
                if not (await session_limit.hit(address)).allowed:
                    await sio.emit("session_refused", {"error": "too many sessions", "retry_after": 60}, room=sid)
                    return
            except RedisError:
                await sio.emit("session_refused", {"error": TRY_AGAIN["en"], "retry_after": 5}, room=sid)
                return
            session_id, token = data.get("session_id"), data.get("token")
            resumed = signer.valid(session_id, token)
            if not resumed:
                session_id, token = signer.new()
            await sio.save_session(sid, {"conversation": session_id, "address": address}, namespace=self.namespace)
            if self.session_persistence:
                joined = sio.enter_room(sid, session_id, namespace=self.namespace)
                if inspect.isawaitable(joined):  # a coroutine since python-socketio 5.9
                    await joined
            confirm = {"session_id": session_id, "token": token, "max_message": guard.settings.max_chars}
            await sio.emit("session_confirm", confirm, room=sid, namespace=self.namespace)
            turns = await self.history(session_id) if resumed else []
            await sio.emit("history", {"messages": turns}, room=sid, namespace=self.namespace)

        typing_sent: dict[str, float] = {}

        async def customer_typing(sid: str, *_: Any) -> None:
            """The customer is typing: the agent who has the chat sees it (handoff service)."""
            now = time.monotonic()
            if now - typing_sent.get(sid, 0.0) < TYPING_EVERY_S:
                return
            if len(typing_sent) > MAX_TYPING_SOCKETS:  # bounded, whatever the clients do
                typing_sent.clear()
            typing_sent[sid] = now
            session = await sio.get_session(sid, namespace=self.namespace) or {}
            if session.get("conversation"):
                with contextlib.suppress(RedisError):
                    await redis.publish(TYPING_CUSTOMER, json.dumps({"conversation_id": session["conversation"]}))

        async def relay_agent_typing(app: Any, _loop: Any = None) -> None:
            """An agent is typing in a widget customer's chat: show it in that widget."""

            async def show(_channel: str, data: dict[str, Any]) -> None:
                room = data.get("conversation_id")
                if isinstance(room, str) and room.startswith(f"{CHANNEL}:"):
                    payload = {"agent": str(data.get("agent") or "")[:64]}
                    await sio.emit("agent_typing", payload, room=room, namespace=self.namespace)

            app.add_task(follow(redis, (TYPING_AGENT,), show, "webchat: agent typing relay"))

        blueprint.listener("after_server_start")(relay_agent_typing)
        sio.on("typing", customer_typing, namespace=self.namespace)

        async def user_message(sid: str, data: dict | None = None, *_: Any) -> dict[str, Any]:
            if in_order.busy(sid):
                return {"ok": False, "error": "too many messages at once", "reason": "rate_limited", "retry_after": 2}
            async with in_order.turn(sid):
                return await handle(sid, data)

        async def handle(sid: str, data: dict | None) -> dict[str, Any]:
            data = data if isinstance(data, dict) else {}
            session = await sio.get_session(sid, namespace=self.namespace) or {}
            conversation = session.get("conversation")
            if not conversation:
                return {"ok": False, "error": "no session: send session_request first"}
            try:
                verdict = await guard.admit(conversation, session.get("address"), data.get("message"))
            except RedisError:
                return {"ok": False, "error": TRY_AGAIN["en"], "retry_after": 5}
            if not verdict.ok:
                answer: dict[str, Any] = {"ok": False, "error": verdict.reply, "reason": verdict.reason}
                if verdict.reason == "rate_limited":
                    answer["retry_after"] = max(1.0, verdict.retry_after)
                    await guard.hold_refusal(verdict)  # in this socket's turn: it waits too
                return answer
            client_id = data.get("client_id")
            client_id = clean_text(client_id)[:64] or None if isinstance(client_id, str) else None
            metadata = client_metadata(data.get(self.metadata_key))
            output = WebchatOutput(sio, self.bot_message_evt)
            message = UserMessage(
                verdict.text,
                output,
                conversation,
                input_channel=self.name(),
                message_id=client_id or uuid.uuid4().hex,
                metadata=metadata,
            )
            try:
                if client_id is None:
                    async with guard.slots.turn(session.get("address")):
                        await on_new_message(message)
                    return {"ok": True}
                state = await ledger.begin(conversation, client_id)
                if state == MessageLedger.DONE:
                    return {"ok": True, "duplicate": True}
                if state == MessageLedger.IN_FLIGHT:
                    return {"ok": False, "error": "still being handled", "retry_after": 2}
                if state == MessageLedger.STALE and client_id in await stored_message_ids(
                    current_agent().tracker_store, conversation
                ):
                    await ledger.done(conversation, client_id)
                    return {"ok": True, "duplicate": True}
                async with guard.slots.turn(session.get("address")):
                    await ledger.holding(conversation, client_id, on_new_message(message))
                await ledger.done(conversation, client_id)
            except Busy:
                if client_id is not None:
                    await ledger.forget(conversation, client_id)
                return {"ok": False, "error": "busy", "reason": "rate_limited", "retry_after": 1}
            except Exception:
                log.exception("webchat: message for %s not stored; the widget will send it again", conversation)
                if client_id is not None:
                    await ledger.forget(conversation, client_id)
                return {"ok": False, "error": TRY_AGAIN["en"], "retry_after": 5}
            return {"ok": True}

        sio.on("session_request", session_request, namespace=self.namespace)
        sio.on(self.user_message_evt, user_message, namespace=self.namespace)

        async def asset(request: Request, name: str) -> response.HTTPResponse:
            if name not in ASSETS or not ASSETS[name][0].is_file():
                return response.json({"error": "not found"}, status=404)
            path, mime = ASSETS[name]
            return await response.file(path, mime_type=mime, headers={"Cache-Control": "no-cache"})

        blueprint.add_route(asset, "/<name>", methods=["GET"])
        return blueprint
