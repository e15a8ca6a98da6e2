"""Real clients for end-to-end tests: a customer on the widget's socket.io channel and an
agent on the console's HTTP API and WebSocket."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import socketio

from bot.channels.webchat import SessionSigner

WEBCHAT_SECRET = "test-webchat-secret"  # the stack fixture gives Rasa this secret


class Customer:
    """A customer in the website widget: socket.io to Rasa's webchat channel.

    ``session_id`` is resumed with a token signed by the test ``WEBCHAT_SECRET`` (as if the
    server had created it earlier), so a test knows the conversation id in advance;
    ``None`` asks the server for a new session, as a first-time visitor does.
    """

    def __init__(self, rasa_url: str, session_id: str | None = None, token: str | None = None) -> None:
        self.rasa_url = rasa_url
        self.session_id = session_id
        if session_id is not None and token is None:
            token = SessionSigner(WEBCHAT_SECRET).token(session_id)
        self.token = token
        self.confirmed: dict = {}
        self.sio = socketio.AsyncClient(reconnection=False)
        self.inbox: asyncio.Queue[dict] = asyncio.Queue()
        self.seen: list[dict] = []
        self.history: list[dict] = []
        self._confirmed = asyncio.Event()
        self._history = asyncio.Event()
        self.sio.on("bot_uttered", self._on_bot)
        self.sio.on("session_confirm", self._on_confirm)
        self.sio.on("history", self._on_history)

    async def _on_bot(self, data: dict) -> None:
        await self.inbox.put(data)

    async def _on_confirm(self, data: Any) -> None:
        self.confirmed = data
        self.session_id, self.token = data["session_id"], data["token"]
        self._confirmed.set()

    async def _on_history(self, data: dict) -> None:
        self.history = data.get("messages", [])
        self._history.set()

    async def __aenter__(self) -> Customer:
        await self.sio.connect(self.rasa_url, socketio_path="/socket.io", transports=["websocket"])
        await self.sio.emit("session_request", {"session_id": self.session_id, "token": self.token})
        await asyncio.wait_for(self._confirmed.wait(), 10)
        await asyncio.wait_for(self._history.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.sio.disconnect()

    async def say(self, text: str) -> None:
        await self.sio.emit("user_uttered", {"message": text, "session_id": self.session_id})

    async def send_until_stored(self, text: str, client_id: str | None = None, timeout: float = 90) -> dict:
        """Send as the widget does: with an id, again after the server's ``retry_after`` (or a
        dead socket) until the server says the message is stored."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        body = {"message": text, "session_id": self.session_id, "client_id": client_id or uuid.uuid4().hex}
        while loop.time() < deadline:
            try:
                ack = await self.sio.call("user_uttered", body, timeout=20)
            except Exception:  # the socket died with its node, or no answer yet
                ack = None
            if isinstance(ack, dict) and ack.get("ok"):
                return ack
            await asyncio.sleep(float((ack or {}).get("retry_after") or 1))
        raise AssertionError(f"{text!r} never acknowledged")

    async def expect(self, predicate: Callable[[dict], bool], timeout: float = 30, what: str = "") -> dict:
        """Wait for a bot/agent message matching ``predicate``; fail with what did arrive."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no message {what!r} within {timeout}s; got {[m.get('text') for m in self.seen]}")
            try:
                message = await asyncio.wait_for(self.inbox.get(), remaining)
            except asyncio.TimeoutError:
                continue
            self.seen.append(message)
            if predicate(message):
                return message

    async def expect_text(self, fragment: str, timeout: float = 30) -> dict:
        return await self.expect(lambda m: fragment.lower() in (m.get("text") or "").lower(), timeout, fragment)

    async def quiet_for(self, seconds: float) -> list[dict]:
        """Everything that arrives in the next ``seconds`` (to prove the bot stays silent)."""
        got = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (remaining := deadline - loop.time()) > 0:
            try:
                got.append(await asyncio.wait_for(self.inbox.get(), remaining))
            except asyncio.TimeoutError:
                break
        self.seen.extend(got)
        return got


class Agent:
    """An agent using the console's API and WebSocket, logged in like the browser does."""

    def __init__(self, console_url: str, name: str, password: str) -> None:
        self.url = console_url
        self.name = name
        self.password = password
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.pushed: asyncio.Queue[dict] = asyncio.Queue()
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> Agent:
        await self.login()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()
        await self.http.close()

    async def login(self) -> None:
        async with self.http.post(
            f"{self.url}/login", data={"name": self.name, "password": self.password}, allow_redirects=False
        ) as response:
            assert response.status == 302 and response.headers["Location"] == "/", await response.text()

    async def connect(self) -> None:
        self.ws = await self.http.ws_connect(f"{self.url}/ws")
        self._reader = asyncio.create_task(self._read())

    async def disconnect(self) -> None:
        if self._reader:
            self._reader.cancel()
        if self.ws:
            await self.ws.close()
        self.ws = None

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await self.pushed.put(json.loads(message.data))

    async def expect_push(self, predicate: Callable[[dict], bool], timeout: float = 30) -> dict:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = []
        while (remaining := deadline - loop.time()) > 0:
            try:
                item = await asyncio.wait_for(self.pushed.get(), remaining)
            except asyncio.TimeoutError:
                break
            seen.append(item)
            if predicate(item):
                return item
        raise AssertionError(f"no matching push within {timeout}s; got {seen}")

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(f"{self.url}{path}") as response:
            return response.status, await response.json(content_type=None)

    async def post(self, path: str, body: dict | None = None) -> tuple[int, Any]:
        headers = {"X-Requested-With": "console"}
        async with self.http.post(f"{self.url}{path}", json=body or {}, headers=headers) as response:
            return response.status, await response.json(content_type=None)
