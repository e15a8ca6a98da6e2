"""A local stand-in for Meta's Graph API, the one part of the system we cannot reach.

It runs a real aiohttp server on a loopback port in a background thread and plays Meta:

* ``POST /{version}/{phone number id}/messages`` (WhatsApp) and ``/{version}/me/messages``
  (Messenger) check the access token (401 otherwise) and record what was sent (``sent``).
  Like Meta, they refuse what the messaging windows do not allow, for customers whose last
  message the test set with :meth:`FakeGraphApi.customer_wrote`: WhatsApp free-form
  messages after 24 hours (400, error 131047; templates pass), Messenger ``RESPONSE``
  after 24 hours and anything after 7 days (400, error 10 / 2018278). Refused messages are
  in ``refused``, never in ``sent``. Customers the test said nothing about count as having
  just written.
* ``GET /{version}/{media id}`` (WhatsApp media: its URL, type and size) and the URL it
  gives both want the WhatsApp token as ``Authorization: Bearer``; files are added with
  :meth:`FakeGraphApi.add_media`.
* ``GET /cdn/{key}/{name}``: a Messenger attachment URL (no token), from :meth:`add_file`.
* ``GET /{version}/{psid}?fields=first_name,last_name&access_token=...``: a Messenger user
  profile (names from :meth:`add_profile`; others get Meta's "no profile" error).

Every request, whatever its answer, is recorded in ``calls``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.processes import free_port

WHATSAPP_TOKEN = "test-whatsapp-access-token"
MESSENGER_TOKEN = "test-messenger-page-token"
VERSION = "v21.0"
DAY = 24 * 3600
INVALID_TOKEN = {"error": {"message": "Invalid OAuth access token", "code": 190}}
RE_ENGAGEMENT = {
    "error": {
        "message": "(#131047) Re-engagement message",
        "type": "OAuthException",
        "code": 131047,
        "error_data": {
            "messaging_product": "whatsapp",
            "details": "Message failed to send because more than 24 hours have passed since the customer last "
            "replied to this number.",
        },
    }
}
OUTSIDE_WINDOW = {
    "error": {
        "message": "(#10) This message is sent outside of allowed window.",
        "type": "OAuthException",
        "code": 10,
        "error_subcode": 2018278,
    }
}


@dataclass
class Sent:
    path: str
    body: dict[str, Any]
    at: float = field(default_factory=time.time)


@dataclass
class Call:
    """One request the fake received, as Meta would have seen it."""

    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    status: int = 0
    at: float = field(default_factory=time.time)


@dataclass
class Media:
    data: bytes
    mime: str
    declared_size: int


class FakeGraphApi:
    def __init__(self) -> None:
        self.port = free_port()
        self.sent: list[Sent] = []
        self.refused: list[Sent] = []
        self.calls: list[Call] = []
        self.media: dict[str, Media] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.profiles: dict[str, tuple[str, str]] = {}
        self.last_message: dict[str, float] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- what a test sets up ------------------------------------------------------------

    def add_media(self, data: bytes, mime: str, declared_size: int | None = None) -> str:
        """A file a WhatsApp customer sent; returns its media id (as in the webhook)."""
        media_id = str(uuid.uuid4().int % 10**16)
        with self._lock:
            self.media[media_id] = Media(data, mime, len(data) if declared_size is None else declared_size)
        return media_id

    def add_file(self, data: bytes, content_type: str, name: str) -> str:
        """A file a Messenger customer sent; returns its attachment URL (as in the webhook)."""
        key = uuid.uuid4().hex
        with self._lock:
            self.files[key] = (data, content_type)
        return f"{self.url}/cdn/{key}/{name}?_nc_cat=1&oh=signature"

    def add_profile(self, psid: str, first_name: str, last_name: str) -> None:
        with self._lock:
            self.profiles[psid] = (first_name, last_name)

    def customer_wrote(self, recipient: str, at: float) -> None:
        """When the customer last wrote, as Meta knows it (for its messaging windows)."""
        with self._lock:
            self.last_message[recipient] = at

    # --- what Meta answers ----------------------------------------------------------------

    def _record(self, request: web.Request) -> Call:
        call = Call(request.method, request.path, dict(request.query), request.headers.get("Authorization"))
        with self._lock:
            self.calls.append(call)
        return call

    def _answer(self, call: Call, payload: Any, status: int = 200) -> web.Response:
        call.status = status
        return web.json_response(payload, status=status)

    def _window_refusal(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        messenger = "/me/messages" in path
        recipient = str(body.get("recipient", {}).get("id") if messenger else body.get("to"))
        with self._lock:
            last = self.last_message.get(recipient)
        if last is None:
            return None
        age = time.time() - last
        if messenger:
            tagged = body.get("messaging_type") == "MESSAGE_TAG" and body.get("tag") == "HUMAN_AGENT"
            allowed = age < DAY or (tagged and age < 7 * DAY)
            return None if allowed else OUTSIDE_WINDOW
        return None if age < DAY or body.get("type") == "template" else RE_ENGAGEMENT

    async def _messages(self, request: web.Request) -> web.Response:
        call = self._record(request)
        path = request.path
        if "/me/messages" in path:
            if request.query.get("access_token") != MESSENGER_TOKEN:
                return self._answer(call, INVALID_TOKEN, 401)
        elif request.headers.get("Authorization") != f"Bearer {WHATSAPP_TOKEN}":
            return self._answer(call, INVALID_TOKEN, 401)
        body = await request.json()
        refusal = self._window_refusal(path, body)
        with self._lock:
            (self.refused if refusal else self.sent).append(Sent(path, body))
        if refusal:
            return self._answer(call, refusal, 400)
        number = next(self._ids)
        if "/me/messages" in path:
            return self._answer(
                call, {"recipient_id": body.get("recipient", {}).get("id"), "message_id": f"m_{number}"}
            )
        return self._answer(call, {"messaging_product": "whatsapp", "messages": [{"id": f"wamid.fake{number}"}]})

    async def _node(self, request: web.Request) -> web.Response:
        """``GET /{version}/{id}``: WhatsApp media metadata or a Messenger user profile."""
        call = self._record(request)
        node = request.match_info["node"]
        with self._lock:
            media, profile = self.media.get(node), self.profiles.get(node)
        if "access_token" in request.query:  # the Messenger way of passing the token
            if request.query["access_token"] != MESSENGER_TOKEN:
                return self._answer(call, INVALID_TOKEN, 401)
            if profile is None or request.query.get("fields") != "first_name,last_name":
                error = {"message": "(#100) No profile available for this user.", "code": 100}
                return self._answer(call, {"error": error}, 400)
            return self._answer(call, {"first_name": profile[0], "last_name": profile[1], "id": node})
        if request.headers.get("Authorization") != f"Bearer {WHATSAPP_TOKEN}":
            return self._answer(call, INVALID_TOKEN, 401)
        if media is None:
            return self._answer(call, {"error": {"message": "(#100) Invalid media id", "code": 100}}, 404)
        return self._answer(
            call,
            {
                "messaging_product": "whatsapp",
                "url": f"{self.url}/whatsapp/media/{node}",
                "mime_type": media.mime,
                "sha256": hashlib.sha256(media.data).hexdigest(),
                "file_size": str(media.declared_size),
                "id": node,
            },
        )

    async def _media_bytes(self, request: web.Request) -> web.StreamResponse:
        call = self._record(request)
        if request.headers.get("Authorization") != f"Bearer {WHATSAPP_TOKEN}":
            return self._answer(call, INVALID_TOKEN, 401)
        with self._lock:
            media = self.media.get(request.match_info["media_id"])
        if media is None:
            return self._answer(call, {"error": {"message": "not found"}}, 404)
        call.status = 200
        return await self._stream(request, media.data, media.mime)

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        call = self._record(request)
        with self._lock:
            found = self.files.get(request.match_info["key"])
        if found is None:
            return self._answer(call, {"error": "not found"}, 404)
        call.status = 200
        return await self._stream(request, *found)

    async def _stream(self, request: web.Request, data: bytes, content_type: str) -> web.StreamResponse:
        """The bytes without a Content-Length, as a CDN may send them: only the reader's cap stops a big one."""
        answer = web.StreamResponse(headers={"Content-Type": content_type})
        answer.enable_chunked_encoding()
        await answer.prepare(request)
        for start in range(0, len(data), 256 * 1024):
            await answer.write(data[start : start + 256 * 1024])
        await answer.write_eof()
        return answer

    # --- running ------------------------------------------------------------------------

    def start(self) -> None:
        app = web.Application(client_max_size=1024**2)
        app.router.add_post("/{version}/{node}/messages", self._messages)
        app.router.add_get("/whatsapp/media/{media_id}", self._media_bytes)
        app.router.add_get("/cdn/{key}/{name}", self._cdn)
        app.router.add_get("/{version}/{node}", self._node)
        self._runner = web.AppRunner(app)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        assert self._runner is not None
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # --- what a test asks ---------------------------------------------------------------

    def sent_to(self, recipient: str) -> list[Sent]:
        """Everything sent to one WhatsApp number or Messenger user, oldest first."""
        with self._lock:
            return [s for s in self.sent if _recipient(s) == recipient]

    def refused_to(self, recipient: str) -> list[Sent]:
        with self._lock:
            return [s for s in self.refused if _recipient(s) == recipient]

    def calls_to(self, path: str) -> list[Call]:
        """Every request for ``path`` (without the query), oldest first."""
        with self._lock:
            return [c for c in self.calls if c.path == path]

    def wait_for(self, recipient: str, count: int = 1, timeout: float = 30.0) -> list[Sent]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.sent_to(recipient)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        return self.sent_to(recipient)


def _recipient(sent: Sent) -> str | None:
    return sent.body.get("to") or sent.body.get("recipient", {}).get("id")
