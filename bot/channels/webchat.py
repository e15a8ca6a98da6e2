"""The website widget's channel: Rasa's socket.io channel, fixed and extended.

* Rasa 3.6 calls python-socketio's ``enter_room`` without ``await``; since
  python-socketio 5.9 that is a coroutine, so the socket never joined its session's room
  and nothing sent to the room (every bot reply, and every agent reply sent later through
  the HTTP API) reached the browser. We register a ``session_request`` handler that awaits.
* Replies go out as one event carrying text, buttons and, when a person wrote it, the
  agent's name, so the widget can show who is talking.

Configured in ``credentials.yml`` as ``bot.channels.webchat.WebchatInput``.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketIOInput, SocketIOOutput
from sanic import Blueprint

MAX_MESSAGE = 4000
MESSAGE_KEYS = ("text", "buttons", "quick_replies", "image", "attachment", "custom", "agent", "timestamp")


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

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        blueprint = super().blueprint(on_new_message)
        sio = self.sio
        assert sio is not None

        async def session_request(sid: str, data: dict | None) -> None:
            data = data or {}
            session_id = data.get("session_id") or uuid.uuid4().hex
            if self.session_persistence:
                joined = sio.enter_room(sid, session_id, namespace=self.namespace)
                if inspect.isawaitable(joined):  # a coroutine since python-socketio 5.9
                    await joined
            await sio.emit("session_confirm", session_id, room=sid, namespace=self.namespace)

        async def user_message(sid: str, data: dict | None) -> None:
            data = data if isinstance(data, dict) else {}
            sender_id = data.get("session_id") if self.session_persistence else sid
            text = data.get("message")
            if not sender_id or not isinstance(text, str) or not text.strip():
                return  # nothing to answer, and nothing to store
            metadata = data.get(self.metadata_key)
            metadata = metadata if isinstance(metadata, dict) else {}
            output = WebchatOutput(sio, self.bot_message_evt)
            await on_new_message(
                UserMessage(text[:MAX_MESSAGE], output, sender_id, input_channel=self.name(), metadata=metadata)
            )

        sio.on("session_request", session_request, namespace=self.namespace)
        sio.on(self.user_message_evt, user_message, namespace=self.namespace)
        return blueprint
