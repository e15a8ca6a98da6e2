"""Kill every process once, mid-stream, under ``make run``'s supervisor: nothing is lost.

The stack is started the way a newcomer starts it (``python -m bot.run``, its own ports and
folder). Customers on the widget (socket.io), REST and WhatsApp each send a bounded
stream of messages and retry exactly as their real clients do: the widget resends an
unacknowledged message with the same ``client_id``, a REST client retries with the same
``message_id``, Meta redelivers a webhook that was not answered 200. An agent claims one
waiting chat and replies, retrying a reply that was not confirmed with the same ``id``.
Meanwhile Redis, the action server, Rasa and the handoff service are each killed with
SIGKILL once, and the supervisor restarts them.

Then: every acknowledged customer message is in its transcript exactly once and in order,
every agent reply exactly once, the claimed chat belongs to one agent only and the chat
still waiting is still in the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
import socketio

from bot.channels.meta import sign
from bot.channels.webchat import SessionSigner
from bot.processes import free_port
from bot.settings import read_env_file
from tests.conftest import ROOT
from tests.e2e.fake_graph import VERSION, FakeGraphApi
from tests.stack import CHANNEL_SECRETS

READY_TIMEOUT = 300.0
REST_TOKEN = "crash-rest-token"
WEBCHAT_SECRET = "crash-webchat-secret"
PASSWORD = "crash-agent-password"
MESSAGES = 6  # per customer, at least
MAX_MESSAGES = 40  # per customer, at most
GAP = 2.5  # seconds between a customer's messages (within the per-sender rate limit)
CUSTOMERS = 2  # per channel
ORDER = ("redis", "action server", "rasa", "handoff service")


@dataclass
class Running:
    proc: subprocess.Popen
    var_dir: Path
    ports: dict[str, int]
    lines: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['RASA_PORT']}"

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['HANDOFF_PORT']}"

    def output(self) -> str:
        with self.lock:
            return "".join(self.lines)

    def pid(self, name: str) -> int:
        found = re.findall(rf"{re.escape(name)} (?:started \(pid|restarted as pid) (\d+)", self.output())
        return int(found[-1])

    def kill(self, name: str) -> None:
        os.killpg(self.pid(name), signal.SIGKILL)

    def wait_restarted(self, name: str, count: int, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(rf"{re.escape(name)} is healthy again", self.output())) >= count:
                return
            time.sleep(0.3)
        raise AssertionError(f"{name} was not restarted:\n{self.output()[-3000:]}")

    def env(self) -> dict[str, str]:
        return {**os.environ, **{k: str(v) for k, v in self.ports.items()}, "BOT_VAR_DIR": str(self.var_dir)}


@pytest.fixture
def running(tmp_path: Path, graph_api: FakeGraphApi) -> Iterator[Running]:
    ports = {name: free_port() for name in ("RASA_PORT", "ACTION_PORT", "REDIS_PORT", "HANDOFF_PORT")}
    env = {
        **os.environ,
        **CHANNEL_SECRETS,
        **{k: str(v) for k, v in ports.items()},
        "BOT_VAR_DIR": str(tmp_path),
        "REDIS_URL": "",
        "BUSINESS_HOURS_FILE": "always",
        "GRAPH_API_URL": graph_api.url,
        "GRAPH_API_VERSION": VERSION,
        "REST_TOKEN": REST_TOKEN,
        "WEBCHAT_SECRET": WEBCHAT_SECRET,
        "RATE_LIMIT_ADDRESS": "100000/100000",
        "TURNS_PER_ADDRESS": "50",
    }
    for name in ("RASA_TOKEN", "REDIS_PASSWORD", "ACTION_TOKEN"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    stack = Running(proc, tmp_path, ports)
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with stack.lock:
                stack.lines.append(line)
            if "Press Ctrl-C" in line:
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        assert ready.wait(READY_TIMEOUT) and proc.poll() is None, stack.output()
        agent = subprocess.run(
            [sys.executable, "-m", "handoff.agents", "add", "alice", "--password-stdin"],
            input=PASSWORD + "\n",
            env=stack.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert agent.returncode == 0, agent.stderr
        yield stack
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(120)


# --- clients that retry as the real ones do ----------------------------------------------


@dataclass
class Stream:
    """One customer's messages: at least ``MESSAGES``, and more until every kill is over,
    so each kill lands mid-stream. Counts the retries each message needed."""

    channel: str
    number: int
    kills_done: asyncio.Event
    acked: list[str] = field(default_factory=list)
    retries: int = 0

    def texts(self) -> Iterator[tuple[int, str]]:
        index = 0
        while index < MESSAGES or (not self.kills_done.is_set() and index < MAX_MESSAGES):
            yield index, f"{self.channel} customer {self.number} message {index}: where is my order?"
            index += 1


async def widget_customer(stack: Running, stream: Stream) -> str:
    """The widget: one message at a time, resent with the same client_id until acknowledged."""
    session_id = f"webchat:{uuid.uuid4().hex}"
    token = SessionSigner(WEBCHAT_SECRET).token(session_id)
    sio: socketio.AsyncClient | None = None
    for index, text in stream.texts():
        client_id = f"c{index}"
        while True:
            try:
                if sio is None or not sio.connected:
                    sio = socketio.AsyncClient(reconnection=False)
                    confirmed = asyncio.Event()
                    sio.on("session_confirm", lambda data, ev=confirmed: ev.set())
                    await sio.connect(stack.rasa_url, socketio_path="/socket.io", transports=["websocket"])
                    await sio.emit("session_request", {"session_id": session_id, "token": token})
                    await asyncio.wait_for(confirmed.wait(), 10)
                ack = await sio.call("user_uttered", {"message": text, "client_id": client_id}, timeout=20)
                if ack.get("ok"):
                    stream.acked.append(text)
                    break
                stream.retries += 1
                await asyncio.sleep(min(5, float(ack.get("retry_after", 1))))
            except Exception:
                if sio is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(sio.disconnect(), 5)
                sio = None
                stream.retries += 1
                await asyncio.sleep(1)
        await asyncio.sleep(GAP)
    if sio is not None:
        await sio.disconnect()
    return session_id


async def post_until_ok(http: aiohttp.ClientSession, url: str, stream: Stream, text: str, **request: object) -> None:
    """As REST clients and Meta do: the same request again, a second later, until it is a 200."""
    while True:
        try:
            async with http.post(url, **request) as answer:  # type: ignore[arg-type]
                if answer.status == 200:
                    stream.acked.append(text)
                    return
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        stream.retries += 1
        await asyncio.sleep(1)


async def rest_customer(http: aiohttp.ClientSession, stack: Running, stream: Stream) -> str:
    sender = f"crash-{uuid.uuid4().hex[:10]}"
    headers = {"Authorization": f"Bearer {REST_TOKEN}"}
    for index, text in stream.texts():
        body = {"sender": sender, "message": text, "message_id": f"r{index}"}
        await post_until_ok(http, f"{stack.rasa_url}/webhooks/rest/webhook", stream, text, json=body, headers=headers)
        await asyncio.sleep(GAP)
    return f"rest:{sender}"


async def whatsapp_customer(http: aiohttp.ClientSession, stack: Running, stream: Stream) -> str:
    number = f"49{uuid.uuid4().int % 10**10:010d}"
    for index, text in stream.texts():
        message = {"from": number, "id": f"wamid.{number}.{index}", "timestamp": "1700000000", "type": "text"}
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"phone_number_id": CHANNEL_SECRETS["WHATSAPP_PHONE_NUMBER_ID"]},
            "contacts": [{"profile": {"name": "Crash Test"}, "wa_id": number}],
            "messages": [{**message, "text": {"body": text}}],
        }
        payload = {
            "object": "whatsapp_business_account",
            "entry": [{"changes": [{"field": "messages", "value": value}]}],
        }
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(body, CHANNEL_SECRETS["WHATSAPP_APP_SECRET"]),
        }
        await post_until_ok(
            http, f"{stack.rasa_url}/webhooks/whatsapp/webhook", stream, text, data=body, headers=headers
        )
        await asyncio.sleep(GAP)
    return f"whatsapp:{number}"


class Console:
    """An agent whose browser retries what the console did not confirm."""

    def __init__(self, stack: Running) -> None:
        self.stack = stack
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        url = self.stack.console_url + path
        headers = {"X-Requested-With": "console", "Origin": self.stack.console_url}
        async with self.http.request(method, url, json=body, headers=headers, allow_redirects=False) as answer:
            try:
                return answer.status, await answer.json(content_type=None)
            except ValueError:
                return answer.status, {}

    async def login(self) -> None:
        while True:
            try:
                async with self.http.post(
                    self.stack.console_url + "/login",
                    data={"name": "alice", "password": PASSWORD},
                    headers={"Origin": self.stack.console_url},
                    allow_redirects=False,
                ) as answer:
                    if answer.status == 302 and answer.headers.get("Location") == "/":
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(1)

    async def until_ok(self, path: str, body: dict | None = None) -> dict:
        while True:
            try:
                status, answer = await self.request("POST", path, body)
                if status == 200:
                    return answer
                if status == 401:
                    await self.login()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(1)


async def ask_for_a_person(http: aiohttp.ClientSession, stack: Running) -> str:
    sender = f"crash-human-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {REST_TOKEN}"}
    body = {"sender": sender, "message": "I want to talk to a person"}
    async with http.post(f"{stack.rasa_url}/webhooks/rest/webhook", json=body, headers=headers) as answer:
        assert answer.status == 200, await answer.text()
    return f"rest:{sender}"


async def tracker(http: aiohttp.ClientSession, stack: Running, conversation: str) -> dict:
    token = read_env_file(stack.var_dir / "secrets.env")["RASA_TOKEN"]
    url = f"{stack.rasa_url}/conversations/{quote(conversation, safe=':')}/tracker"
    async with http.get(url, params={"token": token}) as answer:
        assert answer.status == 200
        return await answer.json()


def test_nothing_acknowledged_is_lost_when_each_process_is_killed(running: Running) -> None:
    stack = running

    async def scenario() -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            waiting_chat = await ask_for_a_person(http, stack)
            agent_chat = await ask_for_a_person(http, stack)
            console = Console(stack)
            await console.login()
            await console.until_ok(f"/api/chats/{agent_chat}/claim")
            replies = [f"agent reply {i} for the crash test" for i in range(5)]

            kills_done = asyncio.Event()

            async def agent() -> None:
                for index, text in enumerate(replies):
                    await console.until_ok(f"/api/chats/{agent_chat}/reply", {"text": text, "id": f"reply-{index}"})
                    await asyncio.sleep(8)

            async def killer() -> None:
                await asyncio.sleep(3)
                for name in ORDER:
                    await asyncio.to_thread(stack.kill, name)
                    await asyncio.to_thread(stack.wait_restarted, name, 1)
                    await asyncio.sleep(3)
                kills_done.set()

            streams: list[tuple[Stream, asyncio.Task]] = []
            for channel in ("webchat", "rest", "whatsapp"):
                for n in range(CUSTOMERS):
                    stream = Stream(channel, n, kills_done)
                    if channel == "webchat":
                        work = widget_customer(stack, stream)
                    elif channel == "rest":
                        work = rest_customer(http, stack, stream)
                    else:
                        work = whatsapp_customer(http, stack, stream)
                    streams.append((stream, asyncio.ensure_future(work)))
            await asyncio.gather(agent(), killer(), *(task for _, task in streams))

            figures = {}
            for stream, task in streams:
                conversation = task.result()
                events = (await tracker(http, stack, conversation))["events"]
                said = [e["text"] for e in events if e["event"] == "user"]
                assert said == stream.acked and len(said) >= MESSAGES, (conversation, said, stream.acked)
                sent, retries, lost = figures.get(stream.channel, (0, 0, 0))
                lost += len([t for t in stream.acked if t not in said])
                figures[stream.channel] = (sent + len(stream.acked), retries + stream.retries, lost)
            print(f"\ncrash test (sent, retries, lost) per channel: {figures}")
            events = (await tracker(http, stack, agent_chat))["events"]
            sent = [e["text"] for e in events if e["event"] == "bot" and (e.get("metadata") or {}).get("agent")]
            for text in replies:
                assert sent.count(text) == 1, (text, sent)
            status, chat = await console.request("GET", f"/api/chats/{agent_chat}")
            assert status == 200 and chat["state"] == "assigned" and chat["agent"] == "alice"
            status, waiting = await console.request("GET", f"/api/chats/{waiting_chat}")
            assert status == 200 and waiting["state"] == "waiting", waiting
            status, snapshot = await console.request("GET", "/api/queue")
            assert waiting_chat in [c["conversation_id"] for c in snapshot["waiting"]]
            assert [c["conversation_id"] for c in snapshot["mine"]].count(agent_chat) == 1
            await console.http.close()

    asyncio.run(asyncio.wait_for(scenario(), 420))
    output = stack.output()
    for name in ORDER:
        assert f"{name} is healthy again" in output
    assert stack.proc.poll() is None  # the supervisor itself never stopped
