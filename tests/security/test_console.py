"""The agent console against the real stack: retries after a crash, sessions that end,
origins that are refused and a login flood that neither stalls the service nor locks the
real agent out. Attackers connect from other loopback addresses (127.0.0.x), so the
per-address limits never touch the other tests, which all come from 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time

import aiohttp
import pytest
from redis.asyncio import Redis

from bot.messages import say
from bot.processes import service_env
from handoff import keys
from handoff.queue import Queue
from tests.e2e.clients import Agent, Customer
from tests.e2e.conftest import Stack, new_webchat_id, wait_for

PASSWORD = "console security test"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 240))


def agents_cli(stack: Stack, *args: str, password: str | None = None) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "handoff.agents", *args],
        input=None if password is None else password + "\n",
        env={**os.environ, **service_env(stack.settings)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def browser(address: str = "127.0.0.1") -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=(address, 0), force_close=True),
        cookie_jar=aiohttp.CookieJar(unsafe=True),
    )


async def login(session: aiohttp.ClientSession, url: str, name: str, password: str) -> str:
    async with session.post(f"{url}/login", data={"name": name, "password": password}, allow_redirects=False) as r:
        return r.headers.get("Location", "")


def said(stack: Stack, conversation_id: str, text: str) -> int:
    """How often the transcript holds this exact bot/agent line."""
    events = stack.tracker(conversation_id)["events"]
    return sum(1 for e in events if e.get("event") == "bot" and e.get("text") == text)


async def handed_off(me: Customer) -> None:
    await me.say("I want to talk to a real person")
    await me.expect_text("in the queue")


def test_the_same_agents_claim_retry_succeeds_and_the_greeting_goes_out_once(stack: Stack) -> None:
    stack.add_agent("gina", PASSWORD)
    stack.add_agent("hal", PASSWORD)
    conversation = new_webchat_id()
    greeting = say("agent_joined", "en", agent="gina")

    async def scenario() -> None:
        address = stack.settings.redis
        redis = Redis(host=address.host, port=address.port, db=address.db, password=address.password or None)
        async with (
            Customer(stack.settings.rasa_url, conversation) as me,
            Agent(stack.console_url, "gina", PASSWORD) as gina,
            Agent(stack.console_url, "hal", PASSWORD) as hal,
        ):
            await handed_off(me)
            # The service took the chat in Redis and crashed before the greeting went out.
            assert (await Queue(redis).claim(conversation, "gina")).ok
            # The console retries, twice at once (two tabs, or a double click).
            path = f"/api/chats/{conversation}/claim"
            (first, body), (second, _) = await asyncio.gather(gina.post(path), gina.post(path))
            assert (first, second) == (200, 200), body
            assert body.get("already") is True
            await me.expect_text("this is gina")
            assert (await gina.post(path))[0] == 200
            assert (await hal.post(path))[0] == 409  # someone else still cannot take it
            # The greeting went out, but the service died before noting it: a retry looks
            # at the transcript and does not greet again.
            await redis.hdel(keys.chat(conversation), "greeted")
            assert (await gina.post(path))[0] == 200
            assert await me.quiet_for(2) == []
        await redis.close()

    run(scenario())
    assert said(stack, conversation, greeting) == 1


def test_hand_back_retried_after_a_crash_answers_ok_and_speaks_once(stack: Stack) -> None:
    stack.add_agent("ivy", PASSWORD)
    conversation = new_webchat_id()
    back = say("back_to_bot", "en")

    async def scenario() -> None:
        address = stack.settings.redis
        redis = Redis(host=address.host, port=address.port, db=address.db, password=address.password or None)
        async with (
            Customer(stack.settings.rasa_url, conversation) as me,
            Agent(stack.console_url, "ivy", PASSWORD) as ivy,
        ):
            await handed_off(me)
            assert (await ivy.post(f"/api/chats/{conversation}/claim"))[0] == 200
            assert (await ivy.post(f"/api/chats/{conversation}/handback"))[0] == 200
            await me.expect_text("back with")
            # As if the service died after Rasa took the events but before the release.
            await redis.hset(keys.chat(conversation), "state", "assigned")
            await redis.sadd(keys.agent_chats("ivy"), conversation)
            status, body = await ivy.post(f"/api/chats/{conversation}/handback")
            assert status == 200, body
            assert (await Queue(redis).get(conversation)).state == "bot"
            # The answer was lost on the way: the retry is still fine, and says nothing twice.
            status, body = await ivy.post(f"/api/chats/{conversation}/handback")
            assert status == 200 and body.get("already") is True, body
            assert await me.quiet_for(2) == []
        await redis.close()

    run(scenario())
    assert said(stack, conversation, back) == 1


async def _socket_closed(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> bool:
    with contextlib.suppress(asyncio.TimeoutError):
        while True:
            message = await ws.receive(timeout=seconds)
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return True
    return ws.closed


def test_sessions_end_when_the_password_changes_and_when_the_agent_is_removed(stack: Stack) -> None:
    stack.add_agent("jack", PASSWORD)
    url = stack.console_url

    async def scenario() -> None:
        async with browser() as jack:
            assert await login(jack, url, "jack", PASSWORD) == "/"
            ws = await jack.ws_connect(f"{url}/ws")
            await asyncio.to_thread(agents_cli, stack, "passwd", "jack", "--password-stdin", password="new password!")
            async with jack.get(f"{url}/api/queue") as response:
                assert response.status == 401
            assert await _socket_closed(ws, 10)
        async with browser() as jack:
            assert await login(jack, url, "jack", PASSWORD) != "/"
            assert await login(jack, url, "jack", "new password!") == "/"
            ws = await jack.ws_connect(f"{url}/ws")
            await asyncio.to_thread(agents_cli, stack, "remove", "jack")
            async with jack.post(
                f"{url}/api/me/status", json={"status": "online"}, headers={"X-Requested-With": "console"}
            ) as response:
                assert response.status == 401
            assert await _socket_closed(ws, 10)

    run(scenario())


def test_a_page_on_another_port_cannot_open_the_console_socket_or_log_the_agent_out(stack: Stack) -> None:
    stack.add_agent("kim", PASSWORD)
    url = stack.console_url
    evil = f"http://127.0.0.1:{stack.settings.rasa_port}"  # same site, another origin

    async def scenario() -> None:
        async with browser() as kim:
            assert await login(kim, url, "kim", PASSWORD) == "/"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await kim.ws_connect(f"{url}/ws", origin=evil)
            assert refused.value.status == 403
            async with kim.post(f"{url}/logout", headers={"Origin": evil}, allow_redirects=False) as response:
                assert response.status == 403
            async with kim.get(f"{url}/api/me") as response:
                assert response.status == 200
            ws = await kim.ws_connect(f"{url}/ws", origin=url)
            assert (await ws.receive_json(timeout=10))["type"] == "queue"
            await ws.close()

    run(scenario())


def test_a_login_flood_neither_stalls_the_console_nor_locks_the_real_agent_out(stack: Stack) -> None:
    stack.add_agent("lena", PASSWORD)
    url = stack.console_url

    async def scenario() -> None:
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

        async def guess(index: int) -> str:
            async with browser(f"127.0.1.{10 + index}") as attacker:
                return await login(attacker, url, "lena", f"guess number {index}")

        prober = asyncio.create_task(probe())
        await asyncio.sleep(0.2)
        answers = await asyncio.gather(*(guess(i) for i in range(30)))
        done.set()
        await prober
        assert all(a.startswith("/login?error=") for a in answers), answers
        assert len(latencies) >= 5 and max(latencies) < 1.0, latencies

        # One address keeps guessing: it is slowed down; lena, elsewhere, is not.
        async with browser("127.0.2.1") as attacker:
            answers = [await login(attacker, url, "lena", f"again {i}") for i in range(6)]
            assert any("error=locked" in a for a in answers), answers
        async with browser() as lena:
            assert await login(lena, url, "lena", PASSWORD) == "/"

    run(scenario())
    assert wait_for(lambda: stack.redis_client().hget(keys.agent("lena"), "status") == "online")
