"""The queue's Redis scripts against a real redis-server (a database of its own)."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from handoff import keys
from handoff.agents import AgentError, Agents
from handoff.queue import ASSIGNED, BOT, CLOSED, WAITING, Card, Queue, WaitingLine
from tests.stack import REDIS_TEST_PASSWORD

DB = 7


@pytest.fixture
def redis_port(redis_server: int) -> int:
    async def flush() -> None:
        client = Redis(port=redis_server, db=DB, password=REDIS_TEST_PASSWORD)
        await client.flushdb()
        await client.close()

    asyncio.run(flush())
    return redis_server


def announcing_app(queue: Queue, agents: Agents, redis: Redis, session, hours):
    """The handoff service's parts that announce places in line; Rasa is an address where
    nothing listens, so nothing is sent (the announcements are recorded all the same)."""
    from aiohttp import web

    from bot.settings import load_settings
    from handoff.agents import LoginGuard
    from handoff.app import SERVICES, Services
    from handoff.hub import Hub
    from handoff.rasa_api import RasaApi

    app = web.Application()
    app[SERVICES] = Services(
        settings=load_settings(),
        redis=redis,
        queue=queue,
        agents=agents,
        hub=Hub(),
        rasa=RasaApi(session, "http://127.0.0.1:9", "token"),
        logins=LoginGuard(redis),
        hours=hours,
    )
    return app


def run_with_queue(port: int, body) -> None:
    async def scenario() -> None:
        redis = Redis(port=port, db=DB, password=REDIS_TEST_PASSWORD)
        try:
            await body(Queue(redis), Agents(redis), redis)
        finally:
            await redis.close()

    asyncio.run(scenario())


def test_a_conversation_is_queued_once_and_ordered_by_priority_then_age(redis_port: int) -> None:
    async def body(queue: Queue, agents: Agents, redis: Redis) -> None:
        now = time.time()
        assert await queue.enqueue(Card("calm", "asked_for_human", scores=[0.1], created_at=now - 60))
        assert await queue.enqueue(Card("angry", "frustrated", scores=[0.9], created_at=now))
        assert not await queue.enqueue(Card("calm", "frustrated", scores=[1.0]))  # already waiting
        assert [c.conversation_id for c in await queue.waiting(now)] == ["angry", "calm"]
        assert await queue.position("calm") == 2
        # Someone who has waited half an hour longer is not overtaken by a newcomer.
        assert await queue.enqueue(Card("patient", "asked_for_human", scores=[0.1], created_at=now - 1800))
        assert [c.conversation_id for c in await queue.waiting(now)] == ["patient", "angry", "calm"]

    run_with_queue(redis_port, body)


def test_customers_handed_off_at_once_each_hear_their_true_place_from_a_few_shared_reads(redis_port: int) -> None:
    """300 handoffs at the same moment: each customer is told the place the line gives them,
    and the line is read a few times for all of them, not once each (800 at once made the
    action server's reads time out and 217 handoffs fail)."""

    async def body(queue: Queue, agents: Agents, redis: Redis) -> None:
        line = WaitingLine(queue)
        now = time.time()

        async def hand_off(n: int) -> int | None:
            await queue.enqueue(Card(f"c{n}", "asked_for_human", scores=[n % 7 / 10], created_at=now - n))
            return await line.position(f"c{n}")

        told = await asyncio.gather(*(hand_off(n) for n in range(300)))
        assert all(place is not None for place in told)
        assert line.reads <= 30, line.reads
        # Everyone enqueued before a read started is in it: the places told then must match a
        # line that has only grown since; a place told is never better than the final one by
        # more than the chats enqueued after it was read, and the last asker's place is exact.
        final = {c.conversation_id: i for i, c in enumerate(await queue.waiting(), start=1)}
        assert len(final) == 300
        assert await line.position("c299") == final["c299"]
        assert all(1 <= told[n] <= final[f"c{n}"] for n in range(300))

    run_with_queue(redis_port, body)


def test_claim_respects_capacity_and_release_frees_the_slot(redis_port: int) -> None:
    async def body(queue: Queue, agents: Agents, redis: Redis) -> None:
        await agents.add("ann", "long enough pw", capacity=1)
        await queue.enqueue(Card("one", "asked_for_human"))
        await queue.enqueue(Card("two", "asked_for_human"))
        assert (await queue.claim("one", "ann")).ok
        full = await queue.claim("two", "ann")
        assert (full.ok, full.state) == (False, "full")
        taken = await queue.claim("one", "ann")
        assert (taken.ok, taken.state, taken.agent) == (False, ASSIGNED, "ann")
        assert (await queue.get("one")).state == ASSIGNED and await queue.position("one") is None
        assert await queue.release("one", CLOSED)
        assert (await queue.get("one")).state == CLOSED
        assert await redis.scard(keys.agent_chats("ann")) == 0
        assert (await queue.claim("two", "ann")).ok
        await queue.release("two", BOT)
        assert await queue.enqueue(Card("two", "frustrated"))  # handed back, may be queued again
        assert (await queue.get("two")).state == WAITING

    run_with_queue(redis_port, body)


def test_agent_passwords_are_hashed_and_checked(redis_port: int) -> None:
    async def body(queue: Queue, agents: Agents, redis: Redis) -> None:
        await agents.add("ann", "correct horse")
        stored = (await redis.hget(keys.agent("ann"), "password_hash")).decode()
        assert stored.startswith("$argon2id$") and "correct horse" not in stored
        assert await agents.verify("ann", "correct horse")
        assert not await agents.verify("ann", "wrong horse")
        assert not await agents.verify("nobody", "correct horse")
        with pytest.raises(AgentError):
            await agents.add("ann", "short")
        with pytest.raises(AgentError):
            await agents.add("bad name!", "long enough pw")
        await agents.set_status("ann", "online")
        assert await agents.availability() == (1, 3)

    run_with_queue(redis_port, body)


def test_a_customer_is_told_only_when_their_place_moves_up(redis_port: int) -> None:
    """2, then 3 (someone more urgent came in front) is not announced; 2 again is not news;
    1 is. Two replicas announcing at the same moment tell the customer once."""

    async def body(queue: Queue, agents: Agents, redis: Redis) -> None:
        await queue.enqueue(Card("c", "asked_for_human"))
        assert await queue.remember_position_told("c", 2)
        assert not await queue.remember_position_told("c", 3)
        assert not await queue.remember_position_told("c", 2)
        results = await asyncio.gather(*(queue.remember_position_told("c", 1) for _ in range(5)))
        assert sorted(results) == [False] * 4 + [True]

    run_with_queue(redis_port, body)


@pytest.mark.parametrize("open_now", [True, False])
def test_no_queue_updates_while_the_team_is_away(redis_port: int, tmp_path, open_now: bool) -> None:
    """Out of hours the customer was told when the team is back; "you are now number 3"
    every time the queue changes overnight would only say nobody is coming."""
    import aiohttp

    from bot.business_hours import load_business_hours
    from handoff.live import announce_positions

    hours = tmp_path / "hours.yml"
    day = "00:00-24:00" if open_now else "closed"
    week = "\n".join(f"  {d}: '{day}'" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    hours.write_text(f"timezone: Europe/Berlin\nhours:\n{week}\n", encoding="utf-8")

    async def body(queue: Queue, agents: Agents, redis: Redis) -> None:
        await queue.enqueue(Card("first", "asked_for_human", created_at=time.time() - 10))
        await queue.enqueue(Card("second", "asked_for_human"))
        assert await queue.remember_position_told("second", 2)
        await redis.hset(keys.chat("first"), "state", ASSIGNED)  # an agent took the first
        async with aiohttp.ClientSession() as session:
            app = announcing_app(queue, agents, redis, session, load_business_hours(hours))
            await announce_positions(app)
        told = int(await redis.hget(keys.chat("second"), "position_told"))
        assert told == (1 if open_now else 2)

    run_with_queue(redis_port, body)


def test_with_many_waiting_only_a_real_step_forward_is_announced(redis_port: int) -> None:
    """Thirty customers wait; one chat is taken. The three now nearest the front hear their
    new place, and the one whose place improved by a fifth; the 25 further back are not sent
    a message each time one chat is taken (with 200 waiting that was 200 messages a claim)."""
    import aiohttp

    from bot.business_hours import load_business_hours
    from handoff.live import announce_positions

    async def body(queue: Queue, agents: Agents, redis: Redis) -> None:
        start = time.time() - 100
        for n in range(30):
            await queue.enqueue(Card(f"c{n:02d}", "asked_for_human", created_at=start + n))
        async with aiohttp.ClientSession() as session:
            app = announcing_app(queue, agents, redis, session, load_business_hours("always"))
            assert await announce_positions(app) == 30  # everyone hears their place once
            assert await announce_positions(app) == 0  # nothing moved: nothing said
            await redis.hset(keys.chat("c00"), "state", ASSIGNED)
            await redis.zrem(keys.QUEUE, "c00")
            assert await announce_positions(app) == 4
        told = {f"c{n:02d}": int(await redis.hget(keys.chat(f"c{n:02d}"), "position_told")) for n in range(1, 30)}
        assert [told[f"c{n:02d}"] for n in (1, 2, 3, 4)] == [1, 2, 3, 4]
        assert [told[f"c{n:02d}"] for n in (5, 6, 29)] == [6, 7, 30]  # not told again yet

    run_with_queue(redis_port, body)
