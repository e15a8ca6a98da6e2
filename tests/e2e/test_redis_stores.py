"""bot/redis_stores.py against Rasa's own Redis stores, on a real redis-server: the same
tracker stored and the same events streamed, with one read of the stored tracker per save
instead of two; a ticket lock that two replicas cannot both hold, in Rasa's stored format,
in two round trips a turn."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque

import pytest
import redis
from rasa.core.lock import Ticket, TicketLock
from rasa.core.lock_store import RedisLockStore
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.broker import RedisStreamBroker
from bot.redis_stores import LockStore, TrackerStore
from bot.settings import RedisAddress
from tests.stack import REDIS_TEST_PASSWORD

DB = 8


def session(start: float, text: str) -> list:
    return [
        ActionExecuted("action_session_start", timestamp=start),
        SessionStarted(timestamp=start + 0.1),
        ActionExecuted("action_listen", timestamp=start + 0.2),
        UserUttered(text, {"name": "faq", "confidence": 0.9}, timestamp=start + 0.3),
        BotUttered(f"answer to {text}", timestamp=start + 0.4),
    ]


def test_our_store_keeps_and_streams_what_rasas_does_reading_once(
    redis_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://:{REDIS_TEST_PASSWORD}@127.0.0.1:{redis_server}/{DB}")
    monkeypatch.delenv("REDIS_SENTINELS", raising=False)
    client = redis.Redis(port=redis_server, db=DB, password=REDIS_TEST_PASSWORD, decode_responses=True)
    client.flushdb()
    address = RedisAddress("127.0.0.1", redis_server, DB, REDIS_TEST_PASSWORD)
    domain = Domain.empty()
    ours = TrackerStore(domain, event_broker=RedisStreamBroker(address.sync_client(), stream="s:ours"), key_prefix="o")
    theirs = RedisTrackerStore(
        domain,
        port=redis_server,
        db=DB,
        password=REDIS_TEST_PASSWORD,
        key_prefix="t",
        event_broker=RedisStreamBroker(address.sync_client(), stream="s:theirs"),
    )

    def gets() -> int:
        return int(client.info("commandstats").get("cmdstat_get", {}).get("calls", 0))

    async def scenario() -> dict[str, int]:
        reads = {}
        for name, store in (("ours", ours), ("theirs", theirs)):
            before = gets()
            tracker = DialogueStateTracker.from_events("c1", session(1000.0, "first"))
            await store.save(tracker)
            # A new session, as Rasa saves it: the session it read plus the new one's events.
            tracker = DialogueStateTracker.from_events("c1", session(1000.0, "first") + session(5000.0, "second"))
            await store.save(tracker)
            tracker.update(UserUttered("third", {"name": "faq", "confidence": 0.8}, timestamp=5001.0))
            await store.save(tracker)
            reads[name] = gets() - before
        return reads

    reads = asyncio.run(scenario())
    assert reads == {"ours": 3, "theirs": 6}  # one read per save instead of two

    def events(store: RedisTrackerStore) -> list[dict]:
        return json.loads(client.get(f"{store.key_prefix}c1"))["events"]

    def streamed(stream: str) -> list[dict]:
        return [json.loads(fields["data"]) for _, fields in client.xrange(stream)]

    assert events(ours) == events(theirs) and len(events(ours)) == 11  # both sessions kept
    assert streamed("s:ours") == streamed("s:theirs") and len(streamed("s:ours")) >= 11  # as Rasa streams them


@pytest.fixture
def locks(redis_server: int, monkeypatch: pytest.MonkeyPatch) -> redis.Redis:
    monkeypatch.setenv("REDIS_URL", f"redis://:{REDIS_TEST_PASSWORD}@127.0.0.1:{redis_server}/{DB}")
    monkeypatch.delenv("REDIS_SENTINELS", raising=False)
    client = redis.Redis(port=redis_server, db=DB, password=REDIS_TEST_PASSWORD, decode_responses=True)
    client.flushdb()
    return client


def test_two_replicas_never_run_one_conversation_at_once(locks: redis.Redis) -> None:
    """Two Rasa replicas (two stores, two threads, two event loops) take turns on one
    conversation, each turn a read-modify-write of the conversation's state: no two turns
    overlap and none is lost. Rasa's own store, in the same race, let turns overlap and
    lost most of them (a get-then-set ticket: both replicas drew the same number)."""
    turns, overlaps, errors = 40, [], []

    def replica() -> None:
        store = LockStore()

        async def turn() -> None:
            async with store.lock("webchat:c1", wait_time_in_seconds=0.002):
                if locks.incr("holders") != 1:
                    overlaps.append(1)
                value = int(locks.get("counter") or 0)
                await asyncio.sleep(0.001)  # another turn of this replica runs meanwhile, if it may
                locks.set("counter", value + 1)
                locks.decr("holders")

        async def run() -> None:
            await asyncio.gather(*(turn() for _ in range(turns)))

        try:
            asyncio.run(run())
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert overlaps == [] and int(locks.get("counter")) == 2 * turns
    assert sorted(locks.keys()) == ["counter", "holders"]  # every ticket given back: no lock left


def test_the_lock_is_rasas_format_in_two_round_trips_and_a_dead_holder_blocks_nobody(locks: redis.Redis) -> None:
    ours = LockStore()
    rasas = RedisLockStore(port=locks.connection_pool.connection_kwargs["port"], db=DB, password=REDIS_TEST_PASSWORD)
    rasas.key_prefix = ours.key_prefix
    key = ours.key_prefix + "webchat:c2"

    def scripts_run() -> int:
        stats = locks.info("commandstats")
        return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))

    async def scenario() -> None:
        before = scripts_run()
        async with ours.lock("webchat:c2"):
            held = rasas.get_lock("webchat:c2")  # Rasa reads what we wrote
            assert held is not None and [t.number for t in held.tickets] == [0] and held.now_serving == 0
            assert 0 < locks.pttl(key) <= 61_000  # gone by itself if this process died now
        assert scripts_run() - before == 2  # take a ticket, give it back (Rasa: seven round trips)
        assert locks.exists(key) == 0

        # A ticket Rasa's store issued and still holds makes ours wait, then ours goes ahead.
        ticket = rasas.issue_ticket("webchat:c2")
        entered = asyncio.Event()

        async def waiter() -> None:
            async with ours.lock("webchat:c2"):
                entered.set()

        task = asyncio.create_task(waiter())
        await asyncio.sleep(0.3)
        assert not entered.is_set()
        started = time.perf_counter()
        rasas.cleanup("webchat:c2", ticket)
        await asyncio.wait_for(entered.wait(), 2)
        assert time.perf_counter() - started < 0.5  # polled every 50 ms, not every second
        await task

        # A process that died holding a ticket (now expired) blocks nobody.
        rasas.save_lock(TicketLock("webchat:c2", deque([Ticket(0, time.time() - 1)])))
        await asyncio.wait_for(_enter(ours, "webchat:c2"), 1)

    asyncio.run(scenario())


async def _enter(store: LockStore, conversation: str) -> None:
    async with store.lock(conversation):
        pass
