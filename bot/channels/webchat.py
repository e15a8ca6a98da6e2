"""The website widget's channel: Rasa's socket.io channel, fixed and extended.

* Rasa 3.6 calls python-socketio's ``enter_room`` without ``await``; since
  python-socketio 5.9 that is a coroutine, so the socket never joined its session's room
  and nothing sent to the room (every bot reply, and every agent reply sent later through
  the HTTP API) reached the browser. Our ``session_request`` handler awaits it.
* After confirming a session it sends the conversation so far (``history``), so a page
  reload or a second tab shows everything.
* A customer message is acknowledged only once Rasa has handled and stored it, and a
  repeated ``client_id`` is ignored: the widget keeps unacknowledged messages and resends
  them after a network drop, so nothing typed offline is lost or answered twice.
* Replies go out as one event carrying text, buttons and, when a person wrote it, the
  agent's name, so the widget can show who is talking.
* The blueprint also serves the widget's files and a demo page under ``/webhooks/webchat/``.

Configured in ``credentials.yml`` as ``bot.channels.webchat.WebchatInput``.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketIOInput, SocketIOOutput
from redis.asyncio import Redis
from sanic import Blueprint, Sanic, response
from sanic.request import Request

from bot.settings import ROOT, load_settings
from bot.transcript import transcript

log = logging.getLogger(__name__)

MAX_MESSAGE = 4000
SEEN_TTL = 24 * 3600
MESSAGE_KEYS = ("text", "buttons", "quick_replies", "image", "attachment", "custom", "agent", "timestamp")
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


def seen_key(session_id: str, client_id: str) -> str:
    return f"channel:seen:webchat:{session_id}:{client_id}"


class WebchatOutput(SocketIOOutput):
    @classmethod
    def name(cls) -> str:
        return "webchat"

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        payload = {key: message[key] for key in MESSAGE_KEYS if message.get(key) is not None}
        if not payload.get("text") and not payload.get("buttons") and not payload.get("custom"):
            return
        await self.sio.emit(self.bot_message_evt, payload, room=recipient_id)


class WebchatInput(SocketIOInput):
    @classmethod
    def name(cls) -> str:
        return "webchat"

    def get_output_channel(self) -> OutputChannel | None:
        if self.sio is None:
            return None
        return WebchatOutput(self.sio, self.bot_message_evt)

    async def history(self, session_id: str) -> list[dict[str, Any]]:
        """The conversation's current session as transcript turns, for a reloaded page."""
        try:
            agent = Sanic.get_app().ctx.agent
            tracker = await agent.tracker_store.retrieve(session_id)
        except Exception:  # a widget without history still works
            log.exception("no history for %s", session_id)
            return []
        if tracker is None:
            return []
        return transcript({"events": [event.as_dict() for event in tracker.events]})

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        blueprint = super().blueprint(on_new_message)
        sio = self.sio
        assert sio is not None
        address = load_settings().redis
        redis = Redis(host=address.host, port=address.port, db=address.db, password=address.password or None)

        async def session_request(sid: str, data: dict | None) -> None:
            data = data if isinstance(data, dict) else {}
            session_id = data.get("session_id")
            if not isinstance(session_id, str) or not 8 <= len(session_id) <= 64:
                session_id = uuid.uuid4().hex
            if self.session_persistence:
                joined = sio.enter_room(sid, session_id, namespace=self.namespace)
                if inspect.isawaitable(joined):  # a coroutine since python-socketio 5.9
                    await joined
            await sio.emit("session_confirm", session_id, room=sid, namespace=self.namespace)
            await sio.emit("history", {"messages": await self.history(session_id)}, room=sid, namespace=self.namespace)

        async def user_message(sid: str, data: dict | None) -> dict[str, Any]:
            data = data if isinstance(data, dict) else {}
            sender_id = data.get("session_id") if self.session_persistence else sid
            text = data.get("message")
            if not sender_id or not isinstance(text, str) or not text.strip():
                return {"ok": False, "error": "a message needs a session_id and some text"}
            client_id = data.get("client_id")
            if isinstance(client_id, str) and client_id:
                first_time = await redis.set(seen_key(sender_id, client_id[:64]), 1, nx=True, ex=SEEN_TTL)
                if not first_time:
                    return {"ok": True, "duplicate": True}
            metadata = data.get(self.metadata_key)
            metadata = metadata if isinstance(metadata, dict) else {}
            output = WebchatOutput(sio, self.bot_message_evt)
            message = UserMessage(text[:MAX_MESSAGE], output, sender_id, input_channel=self.name(), metadata=metadata)
            try:
                await on_new_message(message)
            except Exception:
                if isinstance(client_id, str) and client_id:
                    await redis.delete(seen_key(sender_id, client_id[:64]))  # let the resend through
                raise
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
