"""A local stand-in for Meta's Graph API, the one part of the system we cannot reach.

It runs a real aiohttp server on a loopback port in a background thread, checks the
access token the way Meta does (401 otherwise), and records every request so tests can
assert exactly what our channels sent.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.processes import free_port

WHATSAPP_TOKEN = "test-whatsapp-access-token"
MESSENGER_TOKEN = "test-messenger-page-token"
VERSION = "v21.0"


@dataclass
class Sent:
    path: str
    body: dict[str, Any]
    at: float = field(default_factory=time.time)


class FakeGraphApi:
    def __init__(self) -> None:
        self.port = free_port()
        self.sent: list[Sent] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _messages(self, request: web.Request) -> web.Response:
        path = request.path
        if "/me/messages" in path:
            if request.query.get("access_token") != MESSENGER_TOKEN:
                return web.json_response({"error": {"message": "Invalid OAuth access token", "code": 190}}, status=401)
        elif request.headers.get("Authorization") != f"Bearer {WHATSAPP_TOKEN}":
            return web.json_response({"error": {"message": "Invalid OAuth access token", "code": 190}}, status=401)
        body = await request.json()
        with self._lock:
            self.sent.append(Sent(path, body))
        number = next(self._ids)
        if "/me/messages" in path:
            return web.json_response({"recipient_id": body.get("recipient", {}).get("id"), "message_id": f"m_{number}"})
        return web.json_response({"messaging_product": "whatsapp", "messages": [{"id": f"wamid.fake{number}"}]})

    def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{version}/{node}/messages", self._messages)
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

    def sent_to(self, recipient: str) -> list[Sent]:
        """Everything sent to one WhatsApp number or Messenger user, oldest first."""
        with self._lock:
            return [
                s
                for s in self.sent
                if s.body.get("to") == recipient or s.body.get("recipient", {}).get("id") == recipient
            ]

    def wait_for(self, recipient: str, count: int = 1, timeout: float = 30.0) -> list[Sent]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.sent_to(recipient)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        return self.sent_to(recipient)
