"""The handoff service under attack and failure, against a real redis-server of its own.

The console runs in this process (aiohttp's test server on a loopback port) with the real
Redis, so a test can stop and restart Redis under it. Rasa is not started: nothing here
needs to reach a customer. Attackers connect from other loopback addresses (127.0.0.x),
which Linux routes to the same server, so per-address limits are tested for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from bot.processes import Process, free_port, redis_process
from bot.settings import load_settings
from handoff.agents import Agents
from handoff.app import create_app
from handoff.events import EventConsumer, stop_task
from handoff.queue import Card, Queue
from tests.conftest import ROOT

PASSWORD = "correct horse battery"


@dataclass
class RedisServer:
    port: int
    process: Process
    data_dir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.stop()

    def start(self, lose_data: bool = False) -> None:
        if lose_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir.mkdir(parents=True)
        self.process.start()
        self.process.wait_healthy(30)


@pytest.fixture(scope="module")
def redis_server_of_our_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed; `make test` installs it")
    folder = tmp_path_factory.mktemp("handoff-redis")
    port = free_port()
    server = RedisServer(port, redis_process(port, folder / "data", folder / "log"), folder / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(redis_server_of_our_own: RedisServer) -> RedisServer:
    """The module's Redis, running and empty (a test before may have stopped it)."""
    server = redis_server_of_our_own
    if not server.process.running():
        server.start()

    async def flush() -> None:
        client = Redis(port=server.port)
        await client.flushall()
        await client.close()

    asyncio.run(flush())
    return server


def run(coro, timeout: float = 120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextlib.asynccontextmanager
async def console(server: RedisServer, tmp_path: Path, public_url: str = "") -> AsyncIterator[str]:
    """The handoff service in this process; yields its base URL."""
    env = {
        "REDIS_URL": server.url,
        "RASA_TOKEN": "not-used-here",
        "RASA_PORT": str(free_port()),  # nothing listens: no test here needs Rasa
        "BOT_VAR_DIR": str(tmp_path),
        "BUSINESS_HOURS_FILE": "always",
    }
    app = create_app(load_settings(env, env_file=Path("/nonexistent")), public_url=public_url)
    test_server = TestServer(app, host="127.0.0.1", port=free_port())
    await test_server.start_server()
    try:
        yield str(test_server.make_url("")).rstrip("/")
    finally:
        await test_server.close()


def client(address: str = "127.0.0.1") -> aiohttp.ClientSession:
    """A browser-like client (keeps cookies) connecting from ``address``."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=(address, 0), force_close=True),
        cookie_jar=aiohttp.CookieJar(unsafe=True),
    )


async def add_agent(server: RedisServer, name: str, password: str = PASSWORD) -> None:
    redis = Redis(port=server.port)
    await Agents(redis).add(name, password)
    await redis.close()


async def login(session: aiohttp.ClientSession, url: str, name: str, password: str) -> aiohttp.ClientResponse:
    async with session.post(f"{url}/login", data={"name": name, "password": password}, allow_redirects=False) as r:
        await r.read()
        return r


def agents_cli(server: RedisServer, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
    """``python -m handoff.agents ...`` the way an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "handoff.agents", *args],
        input=None if password is None else password + "\n",
        env={**os.environ, "REDIS_URL": server.url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def wait_until(predicate, timeout: float = 15.0, interval: float = 0.1):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await predicate()
        if value or loop.time() > deadline:
            return value
        await asyncio.sleep(interval)


# --- logins -----------------------------------------------------------------------------


def test_a_flood_of_bad_logins_does_not_stall_the_console(redis_server: RedisServer, tmp_path: Path) -> None:
    """argon2 runs off the event loop: /health keeps answering while 30 wrong passwords
    (from 30 addresses, so no rate limit cuts the work short) are being checked."""

    async def scenario() -> None:
        await add_agent(redis_server, "alice")
        async with console(redis_server, tmp_path) as url:
            latencies: list[float] = []
            done = asyncio.Event()

            async def probe() -> None:
                async with aiohttp.ClientSession() as session:
                    while not done.is_set():
                        started = time.perf_counter()
                        async with session.get(f"{url}/health") as response:
                            assert response.status == 200
                        latencies.append(time.perf_counter() - started)
                        await asyncio.sleep(0.02)

            async def bad_login(index: int) -> int:
                async with client(f"127.0.0.{10 + index}") as session:
                    return (await login(session, url, "alice", f"wrong password {index}")).status

            prober = asyncio.create_task(probe())
            await asyncio.sleep(0.2)
            started = time.perf_counter()
            statuses = await asyncio.gather(*(bad_login(i) for i in range(30)))
            flood = time.perf_counter() - started
            done.set()
            await prober
            assert statuses == [302] * 30
            # Each wrong password costs argon2 time; on the loop, /health waited for all of them.
            assert len(latencies) >= 5, (latencies, flood)
            assert max(latencies) < 1.0, (max(latencies), flood)

    run(scenario())


def test_wrong_passwords_lock_out_that_address_but_not_the_agent_elsewhere(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        await add_agent(redis_server, "alice")
        async with console(redis_server, tmp_path) as url, client("127.0.0.66") as attacker:
            answers = []
            for attempt in range(6):
                response = await login(attacker, url, "alice", f"guess {attempt}")
                answers.append(response.headers.get("Location"))
                if "error=locked" in (response.headers.get("Location") or ""):
                    locked = response
                    break
            else:
                raise AssertionError(f"never locked out: {answers}")
            assert len(answers) <= 5, answers
            retry_after = int(locked.headers["Retry-After"])
            assert 1 <= retry_after <= 120
            # Even the right password is refused from the locked address for now...
            response = await login(attacker, url, "alice", PASSWORD)
            assert "error=locked" in response.headers["Location"]
            # ...an API client gets 429 with Retry-After...
            async with attacker.post(
                f"{url}/login",
                data={"name": "alice", "password": PASSWORD},
                headers={"Accept": "application/json"},
                allow_redirects=False,
            ) as api:
                assert api.status == 429 and int(api.headers["Retry-After"]) >= 1
                assert "try again" in (await api.json())["error"].lower()
            # ...but the real alice, from her own address, gets in at once.
            async with client("127.0.0.77") as alice:
                started = time.perf_counter()
                response = await login(alice, url, "alice", PASSWORD)
                assert response.status == 302 and response.headers["Location"] == "/"
                assert time.perf_counter() - started < 5
            # The lockout is short: after Retry-After the right password works from there too.
            await asyncio.sleep(retry_after + 0.2)
            response = await login(attacker, url, "alice", PASSWORD)
            assert response.headers["Location"] == "/", response.headers["Location"]

    run(scenario())


def test_guesses_sent_at_once_get_no_further_than_guesses_in_a_row(redis_server: RedisServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        await add_agent(redis_server, "alice")
        async with console(redis_server, tmp_path) as url:

            async def guess(index: int) -> str:
                async with client("127.0.0.55") as attacker:
                    return (await login(attacker, url, "alice", f"guess {index}")).headers["Location"]

            answers = await asyncio.gather(*(guess(i) for i in range(20)))
            checked = [a for a in answers if a == "/login?error=1"]
            assert len(checked) <= 3, answers
            assert all("error=locked" in a for a in answers if a not in checked), answers

    run(scenario())


def test_one_address_cannot_try_password_after_password_across_names(redis_server: RedisServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with console(redis_server, tmp_path) as url, client("127.0.0.88") as attacker:
            refused = None
            for index in range(60):
                response = await login(attacker, url, f"user{index}", "123456789")
                if "error=locked" in (response.headers.get("Location") or ""):
                    refused = index
                    break
            assert refused is not None and refused <= 40, refused
            async with client("127.0.0.89") as other:  # another address is not affected
                assert "error=1" in (await login(other, url, "nobody", "123456789")).headers["Location"]

    run(scenario())


def test_the_login_page_explains_a_lockout(redis_server: RedisServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with console(redis_server, tmp_path) as url, client() as browser:
            async with browser.get(f"{url}/login?error=locked&retry=30") as page:
                html = await page.text()
            async with browser.get(f"{url}/static/console.js") as script:
                js = await script.text()
            assert 'data-testid="login-locked"' in html and "Too many sign-in attempts" in html
            assert "'locked'" in js

    run(scenario())


# --- sessions ---------------------------------------------------------------------------


async def _open_console(url: str, name: str) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    session = client()
    response = await login(session, url, name, PASSWORD)
    assert response.headers["Location"] == "/"
    ws = await session.ws_connect(f"{url}/ws")
    assert (await ws.receive_json(timeout=10))["type"] == "queue"
    return session, ws


async def _closed_within(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> bool:
    with contextlib.suppress(asyncio.TimeoutError):
        while True:
            message = await ws.receive(timeout=seconds)
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return True
    return ws.closed


def test_a_password_change_ends_every_session_of_that_agent(redis_server: RedisServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        await add_agent(redis_server, "alice")
        await add_agent(redis_server, "bob")
        async with console(redis_server, tmp_path) as url:
            alice, alice_ws = await _open_console(url, "alice")
            bob, bob_ws = await _open_console(url, "bob")
            result = await asyncio.to_thread(agents_cli, redis_server, "passwd", "alice", "--password-stdin",
                                             password="a new long password")  # fmt: skip
            assert result.returncode == 0, result.stderr
            async with alice.get(f"{url}/api/queue") as response:
                assert response.status == 401
            async with alice.post(f"{url}/api/me/status", json={"status": "away"},
                                  headers={"X-Requested-With": "console"}) as response:  # fmt: skip
                assert response.status == 401
            assert await _closed_within(alice_ws, 10), "alice's open console kept its WebSocket"
            async with bob.get(f"{url}/api/queue") as response:  # bob is not affected
                assert response.status == 200
            assert not bob_ws.closed
            async with client() as again:
                response = await login(again, url, "alice", "a new long password")
                assert response.headers["Location"] == "/"
            for session in (alice, bob):
                await session.close()

    run(scenario())


def test_a_removed_agent_can_no_longer_claim_or_reply(redis_server: RedisServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        await add_agent(redis_server, "mallory")
        redis = Redis(port=redis_server.port)
        queue = Queue(redis)
        await queue.enqueue(Card("chat-1", "asked_for_human"))
        await queue.enqueue(Card("chat-2", "asked_for_human"))
        async with console(redis_server, tmp_path) as url:
            mallory, ws = await _open_console(url, "mallory")
            async with mallory.post(f"{url}/api/chats/chat-1/claim", headers={"X-Requested-With": "console"}) as r:
                assert r.status == 200  # no Rasa here: taken, but not greeted
            result = await asyncio.to_thread(agents_cli, redis_server, "remove", "mallory")
            assert result.returncode == 0, result.stderr
            headers = {"X-Requested-With": "console"}
            async with mallory.post(f"{url}/api/chats/chat-1/claim", headers=headers) as response:
                assert response.status == 401
            async with mallory.post(f"{url}/api/chats/chat-1/reply", json={"text": "hi"}, headers=headers) as r:
                assert r.status == 401
            assert await _closed_within(ws, 10)
            await mallory.close()
        # Even a request that passed the session check a moment before cannot claim.
        assert not (await queue.claim("chat-2", "mallory")).ok
        assert (await queue.get("chat-2")).state == "waiting"
        # The chat mallory held waits again for someone who can answer it.
        chat = await queue.get("chat-1")
        assert (chat.state, chat.agent) == ("waiting", None)
        assert "chat-1" in [c.conversation_id for c in await queue.waiting()]
        await redis.close()

    run(scenario())


# --- origin -------------------------------------------------------------------------------


def test_a_page_on_another_origin_cannot_use_the_console(redis_server: RedisServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        await add_agent(redis_server, "alice")
        async with console(redis_server, tmp_path) as url, client() as alice:
            own = url  # http://127.0.0.1:PORT
            foreign = ["http://127.0.0.1:1", "http://localhost:" + url.rsplit(":", 1)[1], "null"]
            for origin in foreign:
                async with alice.post(f"{url}/login", data={"name": "alice", "password": PASSWORD},
                                      headers={"Origin": origin}, allow_redirects=False) as response:  # fmt: skip
                    assert response.status == 403, origin
            response = await login(alice, url, "alice", PASSWORD)
            assert response.headers["Location"] == "/"
            for origin in foreign:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await alice.ws_connect(f"{url}/ws", origin=origin)
                assert refused.value.status == 403
                async with alice.post(f"{url}/api/me/status", json={"status": "away"},
                                      headers={"X-Requested-With": "console", "Origin": origin}) as r:  # fmt: skip
                    assert r.status == 403
                async with alice.post(f"{url}/logout", headers={"Origin": origin}, allow_redirects=False) as r:
                    assert r.status == 403
            async with alice.get(f"{url}/api/me") as response:  # still logged in
                assert response.status == 200
            ws = await alice.ws_connect(f"{url}/ws", origin=own)
            assert (await ws.receive_json(timeout=10))["type"] == "queue"
            await ws.close()
            async with alice.post(f"{url}/logout", headers={"Origin": own}, allow_redirects=False) as response:
                assert response.status == 302
            async with alice.get(f"{url}/api/me") as response:
                assert response.status == 401

    run(scenario())


def test_behind_a_proxy_only_the_configured_public_origin_is_accepted(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        await add_agent(redis_server, "alice")
        public = "https://console.example.com"
        async with console(redis_server, tmp_path, public_url=public + "/") as url, client() as alice:
            for origin, status in ((url, 403), ("https://evil.example.com", 403), (public, 302)):
                async with alice.post(f"{url}/login", data={"name": "alice", "password": PASSWORD},
                                      headers={"Origin": origin}, allow_redirects=False) as response:  # fmt: skip
                    assert response.status == status, origin

    run(scenario())


# --- Redis outages ----------------------------------------------------------------------------


def test_the_stream_reader_survives_redis_restarts(redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="handoff.events")

    async def scenario() -> None:
        redis = Redis(port=redis_server.port, socket_connect_timeout=1, socket_timeout=5)
        seen: list[str] = []

        async def handler(fields: dict[str, str]) -> None:
            seen.append(fields["n"])

        consumer = EventConsumer(redis, "c1", handler, stream="test:events", group="g", block_ms=200)
        task = asyncio.create_task(consumer.run())
        writer = Redis(port=redis_server.port)

        async def write(n: str) -> None:
            # The writer may race the consumer creating the group after a data loss: wait
            # until the group exists, as the broker's stream would keep going anyway.
            await writer.xadd("test:events", {"n": n})

        async def has(n: str) -> bool:
            return n in seen

        await wait_until(lambda: writer.exists("test:events"))
        await write("1")
        assert await wait_until(lambda: has("1")), seen

        # Redis restarts with its data (AOF): the reader comes back on its own.
        await writer.close()
        redis_server.stop()
        await asyncio.sleep(1.5)  # several reconnect attempts fail meanwhile
        redis_server.start()  # in this thread: PR_SET_PDEATHSIG follows the spawning thread
        writer = Redis(port=redis_server.port)
        await write("2")
        assert await wait_until(lambda: has("2")), (seen, task)

        # Redis comes back empty (the group is gone: NOGROUP): the reader re-creates it.
        await writer.close()
        redis_server.stop()
        redis_server.start(lose_data=True)  # not in a thread: PR_SET_PDEATHSIG follows the thread
        writer = Redis(port=redis_server.port)
        await asyncio.sleep(0.5)
        await write("3")
        assert await wait_until(lambda: has("3")), (seen, task)
        assert not task.done()
        await stop_task(task)
        await writer.close()
        await redis.close()

    run(scenario())
    lost = [r for r in caplog.records if r.name == "handoff.events" and r.levelno == logging.WARNING]
    outages = [r for r in lost if "unreachable" in r.getMessage()]
    assert len(outages) == 2, [r.getMessage() for r in lost]  # once per outage, not per attempt


def test_the_stream_reader_handles_conversations_side_by_side_each_in_order(redis_server: RedisServer) -> None:
    """One conversation's slow event does not hold back another's (200 handoffs at once left
    the last customers seconds behind when a batch was handled one entry after another), a
    conversation's own events keep their order, and a failing entry stays pending alone."""

    async def scenario() -> None:
        redis = Redis(port=redis_server.port)
        seen: list[str] = []
        b_handled = asyncio.Event()
        waited_for_b: list[bool] = []

        async def handler(fields: dict[str, str]) -> None:
            if fields["n"] == "a1":  # slow: waits (at most 3 s) for the other customer's message
                try:
                    await asyncio.wait_for(b_handled.wait(), 3)
                    waited_for_b.append(True)
                except asyncio.TimeoutError:
                    waited_for_b.append(False)
            if fields["n"] == "c1":
                raise ValueError("a handler bug")
            seen.append(fields["n"])
            if fields["n"] == "b1":
                b_handled.set()

        await redis.xgroup_create("test:side", "g", id="0", mkstream=True)
        for sender, n in (("a", "a1"), ("b", "b1"), ("a", "a2"), ("c", "c1"), ("b", "b2")):
            await redis.xadd("test:side", {"sender_id": sender, "n": n})
        consumer = EventConsumer(redis, "c1", handler, stream="test:side", group="g", block_ms=200)
        task = asyncio.create_task(consumer.run())
        assert await wait_until(lambda: _count(seen, 4)), seen
        assert waited_for_b == [True]  # b's message went through while a's first was still handled
        assert seen.index("a1") < seen.index("a2") and seen.index("b1") < seen.index("b2")
        assert await wait_until(lambda: _pending_is(redis, "test:side", 1)), await redis.xpending("test:side", "g")
        await stop_task(task)
        await redis.close()

    run(scenario())


async def _count(seen: list[str], n: int) -> bool:
    return len(seen) >= n


async def _pending_is(redis: Redis, stream: str, n: int) -> bool:
    return (await redis.xpending(stream, "g"))["pending"] == n


def test_health_says_down_while_redis_is_down_and_api_calls_answer_503(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        await add_agent(redis_server, "alice")
        async with console(redis_server, tmp_path) as url, client() as alice:
            assert (await login(alice, url, "alice", PASSWORD)).headers["Location"] == "/"
            async with alice.get(f"{url}/health") as response:
                assert response.status == 200
            redis_server.stop()
            async with alice.get(f"{url}/health") as response:
                assert response.status == 503
                assert "redis" in (await response.json())["reason"].lower()
            for method, path in (("GET", "/api/queue"), ("GET", "/api/me"), ("POST", "/api/chats/x/claim")):
                async with alice.request(method, f"{url}{path}", headers={"X-Requested-With": "console"}) as r:
                    assert r.status == 503, (path, r.status, await r.text())
                    assert "error" in await r.json()
            redis_server.start()  # in this thread: PR_SET_PDEATHSIG follows the spawning thread

            async def healthy() -> bool:
                async with alice.get(f"{url}/health") as response:
                    return response.status == 200

            assert await wait_until(healthy, timeout=20)
            async with alice.get(f"{url}/api/queue") as response:  # the session survived (AOF)
                assert response.status == 200

    run(scenario())


def test_the_reader_recreates_its_group_when_the_stream_is_deleted(redis_server: RedisServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with console(redis_server, tmp_path) as url, client() as probe:
            async with probe.get(f"{url}/health") as response:
                assert response.status == 200
            redis = Redis(port=redis_server.port)
            await redis.delete("brightline:events")  # the group goes with it: NOGROUP

            async def recovered() -> bool:
                async with probe.get(f"{url}/health") as response:
                    return response.status == 200 and bool(await redis.exists("brightline:events"))

            assert await wait_until(recovered, timeout=20)
            await redis.close()

    run(scenario())


def test_health_says_down_while_the_stream_reader_is_stuck(redis_server: RedisServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with console(redis_server, tmp_path) as url, client() as probe:
            async with probe.get(f"{url}/health") as response:
                assert response.status == 200
            redis = Redis(port=redis_server.port)
            # Redis still answers PING, but holds every write, XREADGROUP included.
            await redis.execute_command("CLIENT", "PAUSE", "12000", "WRITE")
            try:

                async def down() -> dict | None:
                    async with probe.get(f"{url}/health") as response:
                        return await response.json() if response.status == 503 else None

                body = await wait_until(down, timeout=11)
                assert body and body["reason"], body
            finally:
                await redis.execute_command("CLIENT", "UNPAUSE")

            async def healthy() -> bool:
                async with probe.get(f"{url}/health") as response:
                    return response.status == 200

            assert await wait_until(healthy, timeout=20)
            await redis.close()

    run(scenario())


# --- claims ---------------------------------------------------------------------------------


def test_a_claim_tells_the_agent_who_holds_the_chat_that_it_is_theirs(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        redis = Redis(port=redis_server.port)
        agents, queue = Agents(redis), Queue(redis)
        await agents.add("alice", PASSWORD)
        await agents.add("bob", PASSWORD)
        await queue.enqueue(Card("c1", "asked_for_human"))
        first = await queue.claim("c1", "alice")
        assert first.ok and not first.already
        again = await queue.claim("c1", "alice")
        assert again.already and again.agent == "alice"
        other = await queue.claim("c1", "bob")
        assert not other.ok and not other.already and other.agent == "alice"
        assert (await agents.get("alice")).active == 1
        await redis.close()

    run(scenario())


def test_deeply_nested_json_is_refused_not_a_crash(redis_server: RedisServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        await add_agent(redis_server, "alice")
        async with console(redis_server, tmp_path) as url, client() as alice:
            assert (await login(alice, url, "alice", PASSWORD)).headers["Location"] == "/"
            body = "[" * 30_000 + "]" * 30_000  # under the 64 KiB body limit
            headers = {"X-Requested-With": "console", "Content-Type": "application/json"}
            async with alice.post(f"{url}/api/me/status", data=body, headers=headers) as response:
                assert response.status == 400, await response.text()

    run(scenario())
