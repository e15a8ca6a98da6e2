"""Customer data rights against real Redis: export, delete and retention purge.

The first tests write through the real stack (Rasa's HTTP API, so the tracker store and
the event broker write the keys) and call the CLI the way an operator does. The others use
a database of their own on the session's redis-server and Rasa's own RedisTrackerStore
with our broker, so they do not depend on the channels.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import secrets
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from rasa.core.lock_store import RedisLockStore
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from redis.asyncio import Redis

from bot.broker import RedisStreamBroker
from bot.processes import service_env
from bot.settings import RedisAddress
from handoff import keys, privacy
from handoff.agents import Agents
from handoff.queue import Card, Queue
from tests.stack import REDIS_TEST_PASSWORD, Stack

DB = 9
DAY = 86400.0


# --- helpers --------------------------------------------------------------------------------


def stack_redis(stack: Stack) -> Redis:
    address = stack.settings.redis
    return Redis(host=address.host, port=address.port, db=address.db, password=address.password or None)


def append_events(stack: Stack, conversation_id: str, events: list[dict]) -> None:
    """Through Rasa's HTTP API, as the handoff service does: the real tracker store and broker write.

    ``:`` stays as it is: Rasa (Sanic) does not unquote ``%3A`` in the path, it would be
    taken into the conversation id."""
    url = f"{stack.settings.rasa_url}/conversations/{quote(conversation_id, safe=':')}/tracker/events"
    response = requests.post(url, params={"token": stack.token}, json=events, timeout=60)
    response.raise_for_status()


def user_event(text: str, message_id: str, at: float) -> dict:
    return {
        "event": "user",
        "text": text,
        "parse_data": {"intent": {"name": "faq", "confidence": 1.0}, "entities": [], "text": text},
        "input_channel": "whatsapp",
        "message_id": message_id,
        "timestamp": at,
    }


def old_session(at: float) -> list[dict]:
    """A session start dated ``at``: Rasa then adds no session start of its own (dated now)."""
    return [
        {"event": "action", "name": "action_session_start", "timestamp": at},
        {"event": "session_started", "timestamp": at},
        {"event": "action", "name": "action_listen", "timestamp": at},
    ]


def new_whatsapp_id() -> str:
    return f"whatsapp:49{secrets.randbelow(10**11):011d}"


async def stream_senders(redis: Redis, stream: str, field: str) -> list[str]:
    entries = await redis.xrange(stream, "-", "+")
    return [fields.get(field.encode(), b"").decode() for _, fields in entries]


def run_cli(stack: Stack, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "handoff.privacy", *args],
        input=stdin,
        env={**os.environ, **service_env(stack.settings)},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def give_conversation_everything(stack: Stack, redis: Redis, cid: str, text: str, mid: str) -> None:
    """Tracker and stream (via Rasa), a queue entry, a CSAT answer, a channel marker."""
    from bot.channels.meta import Deduplicator

    now = time.time()
    append_events(stack, cid, [user_event(text, mid, now), {"event": "bot", "text": f"Re: {text}", "timestamp": now}])
    assert await Queue(redis).enqueue(Card(cid, "asked_for_human", channel="whatsapp", summary=[f"Customer: {text}"]))
    # As action_store_csat writes it (from an earlier, closed chat).
    await redis.xadd(keys.CSAT, {"conversation_id": cid, "score": 4, "agent": "ann", "ts": now})
    await Deduplicator(redis, "whatsapp").done(mid)  # as the WhatsApp channel marks a handled message


# --- through the real stack -------------------------------------------------------------------


def test_export_lists_everything_and_delete_removes_only_that_conversation(stack: Stack, tmp_path: Path) -> None:
    mine, other = new_whatsapp_id(), new_whatsapp_id()
    mid, other_mid = f"wamid.{secrets.token_hex(8)}", f"wamid.{secrets.token_hex(8)}"

    async def setup() -> None:
        redis = stack_redis(stack)
        try:
            await give_conversation_everything(stack, redis, mine, "my card ends in 4242", mid)
            await give_conversation_everything(stack, redis, other, "where is parcel 77", other_mid)
        finally:
            await redis.close()

    asyncio.run(setup())
    try:
        out = tmp_path / "export.json"
        result = run_cli(stack, "export", mine, "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        document = json.loads(out.read_text(encoding="utf-8"))
        items = document["items"]
        assert document["conversation_id"] == mine and document["found"]
        tracker_texts = [e.get("text") for e in items["tracker"][0]["value"]["events"]]
        assert "my card ends in 4242" in tracker_texts
        assert [e["message_id"] for e in items["tracker"][0]["value"]["events"] if e["event"] == "user"] == [mid]
        streamed = [(e["fields"]["event"], e["fields"]["data"].get("text")) for e in items["events"]]
        assert ("user", "my card ends in 4242") in streamed and ("bot", "Re: my card ends in 4242") in streamed
        assert {e["fields"]["sender_id"] for e in items["events"]} == {mine}
        assert items["handoff_chat"][0]["value"]["card"]["summary"] == ["Customer: my card ends in 4242"]
        assert items["handoff_queue"] == [{"key": keys.QUEUE, "score": pytest.approx(time.time(), abs=120)}]
        assert [c["fields"]["score"] for c in items["csat"]] == ["4"]
        assert [s["key"] for s in items["channel_seen"]] == [f"channel:seen:whatsapp:{mid}"]
        assert other not in out.read_text(encoding="utf-8")

        refused = run_cli(stack, "delete", mine, stdin="no\n")
        assert refused.returncode == 1 and "nothing deleted" in refused.stderr

        result = run_cli(stack, "delete", mine, "--yes")
        assert result.returncode == 0, result.stderr
        counts = dict(line.split() for line in result.stdout.splitlines()[1:])
        assert counts["tracker"] == "1" and counts["handoff_queue"] == "1" and counts["csat"] == "1"
        assert int(counts["events"]) >= 2 and counts["channel_seen"] == "1"

        async def check() -> None:
            redis = stack_redis(stack)
            try:
                assert not await redis.exists(
                    privacy.tracker_key(mine), keys.chat(mine), f"channel:seen:whatsapp:{mid}"
                )
                assert mine not in await stream_senders(redis, keys.EVENT_STREAM, "sender_id")
                assert mine not in await stream_senders(redis, keys.CSAT, "conversation_id")
                assert await redis.zscore(keys.QUEUE, mine) is None
                # The other customer keeps everything.
                assert (
                    await redis.exists(
                        privacy.tracker_key(other), keys.chat(other), f"channel:seen:whatsapp:{other_mid}"
                    )
                    == 3
                )
                assert (await stream_senders(redis, keys.EVENT_STREAM, "sender_id")).count(other) >= 2
                assert other in await stream_senders(redis, keys.CSAT, "conversation_id")
                assert await redis.zscore(keys.QUEUE, other) is not None
            finally:
                await redis.close()

        asyncio.run(check())
        again = run_cli(stack, "delete", mine, "--yes")
        assert again.returncode == 1 and "nothing stored for conversation" in again.stderr
        # Rasa answers an unknown id with a fresh session (and stores an empty tracker).
        events = stack.tracker(mine)["events"]
        assert events and not [e for e in events if e["event"] in ("user", "bot")]
        assert any(e.get("text") == "where is parcel 77" for e in stack.tracker(other)["events"])
    finally:
        for cid in (mine, other):  # leave the shared queue as other tests expect it
            run_cli(stack, "delete", cid, "--yes")


def test_purge_deletes_an_idle_conversation_but_not_a_recent_or_waiting_one(stack: Stack) -> None:
    idle, recent, waiting = new_whatsapp_id(), new_whatsapp_id(), new_whatsapp_id()
    long_ago = time.time() - 40 * DAY
    append_events(stack, idle, [*old_session(long_ago), user_event("old question", "wamid.old1", long_ago + 1)])
    append_events(stack, recent, [user_event("new question", "wamid.new1", time.time())])
    append_events(stack, waiting, [*old_session(long_ago), user_event("still waiting", "wamid.wait1", long_ago + 1)])

    async def scenario() -> None:
        redis = stack_redis(stack)
        try:
            await Queue(redis).enqueue(Card(waiting, "asked_for_human", created_at=long_ago + 2))
            assert idle in await stream_senders(redis, keys.EVENT_STREAM, "sender_id")
            assert await privacy.purge_idle(redis, days=30) >= 1
            assert not await redis.exists(privacy.tracker_key(idle))
            assert idle not in await stream_senders(redis, keys.EVENT_STREAM, "sender_id")
            assert await redis.exists(privacy.tracker_key(recent), privacy.tracker_key(waiting)) == 2
            assert await redis.zscore(keys.QUEUE, waiting) is not None
            # Once nobody waits any more, the old conversation goes too.
            await Queue(redis).release(waiting, "closed")
            await redis.hset(keys.chat(waiting), "closed_at", long_ago + 3)
            assert await privacy.purge_idle(redis, days=30) >= 1
            assert not await redis.exists(privacy.tracker_key(waiting), keys.chat(waiting))
        finally:
            for cid in (idle, recent, waiting):
                await privacy.delete_conversation(redis, cid)
            await redis.close()

    asyncio.run(scenario())


# --- against Redis only (a database of its own) ------------------------------------------------


@pytest.fixture
def redis_port(redis_server: int) -> int:
    async def flush() -> None:
        client = Redis(port=redis_server, db=DB, password=REDIS_TEST_PASSWORD)
        await client.flushdb()
        await client.close()

    asyncio.run(flush())
    return redis_server


def tracker_store(port: int) -> RedisTrackerStore:
    """Rasa's own store, configured as endpoints.yml does, publishing to our broker."""
    broker = RedisStreamBroker(RedisAddress("127.0.0.1", port, DB, REDIS_TEST_PASSWORD).sync_client())
    return RedisTrackerStore(
        Domain.empty(), port=port, db=DB, password=REDIS_TEST_PASSWORD, key_prefix="brightline", event_broker=broker
    )


async def save_tracker(port: int, cid: str, at: float, text: str = "hello", message_id: str | None = None) -> None:
    tracker = DialogueStateTracker.from_events(
        cid,
        [
            ActionExecuted("action_session_start", timestamp=at),
            SessionStarted(timestamp=at),
            ActionExecuted("action_listen", timestamp=at),
            UserUttered(text, {"name": "faq"}, input_channel="rest", message_id=message_id, timestamp=at + 1),
            BotUttered(f"Re: {text}", timestamp=at + 2),
        ],
    )
    await tracker_store(port).save(tracker)


def run(port: int, body) -> None:
    async def scenario() -> None:
        redis = Redis(port=port, db=DB, password=REDIS_TEST_PASSWORD)
        try:
            await body(redis)
        finally:
            await redis.close()

    asyncio.run(scenario())


def test_delete_frees_the_agents_slot_and_keeps_neighbouring_ids(redis_port: int) -> None:
    from bot.channels.guard import MessageLedger
    from bot.ratelimit import Limit, RateLimiter

    mine, longer, other = "rest:alice", "rest:alice:x", "rest:bob"

    async def body(redis: Redis) -> None:
        agents, queue = Agents(redis), Queue(redis)
        await agents.add("ann", "long enough pw", capacity=2)
        ledger, limiter = MessageLedger(redis, "rest"), RateLimiter(redis, "rest:sender", Limit(15, 30))
        for cid in (mine, longer, other):
            await save_tracker(redis_port, cid, time.time(), text=f"I am {cid}", message_id=f"m-{cid}")
            await ledger.done(cid, f"m-{cid}")
            await limiter.hit(cid)
            await redis.xadd(keys.CSAT, {"conversation_id": cid, "score": 5, "agent": "ann", "ts": time.time()})
            fact = {"c": cid, "t": time.time(), "k": "c", "s": 5, "cm": f"comment of {cid}"}  # a rating's comment
            await redis.xadd(keys.KPI_FACTS, {"f": json.dumps(fact)})
        for cid in (mine, longer):
            await queue.enqueue(Card(cid, "asked_for_human"))
            assert (await queue.claim(cid, "ann")).ok
            await redis.hincrby(keys.unread("ann"), cid, 2)
        await queue.enqueue(Card(other, "frustrated"))

        found = (await privacy.locate(redis, [mine]))[mine]
        assert found.counts() == {
            "tracker": 1,
            "lock": 0,
            "events": 5,
            "handoff_chat": 1,
            "handoff_queue": 0,
            "agent_chats": 1,
            "unread": 1,
            "csat": 1,
            "kpi_facts": 1,
            "kpi_customer": 0,
            "notes": 0,
            "media": 0,
            "channel_state": 0,
            "channel_seen": 1,
            "rate_limit": 1,
        }
        done = await privacy.delete_conversation(redis, mine)
        assert done.conversations == [mine] and done.counts == found.counts()
        assert (await agents.get("ann")).active == 1  # a slot is free again
        assert await redis.hkeys(keys.unread("ann")) == [longer.encode()]
        assert (await privacy.locate(redis, [mine]))[mine].empty
        for cid in (longer, other):
            kept = (await privacy.locate(redis, [cid]))[cid].counts()
            assert kept["tracker"] == 1 and kept["events"] == 5 and kept["channel_seen"] == 1 and kept["csat"] == 1
            assert kept["kpi_facts"] == 1
        facts = [f[b"f"].decode() for _, f in await redis.xrange(keys.KPI_FACTS)]
        assert not [f for f in facts if 'comment of rest:alice"' in f]  # the erased one's comment is gone
        assert [c.conversation_id for c in await queue.waiting()] == [other]

    run(redis_port, body)


def test_delete_waits_for_a_message_rasa_is_handling(redis_port: int) -> None:
    cid = "webchat:" + secrets.token_hex(16)

    async def body(redis: Redis) -> None:
        await save_tracker(redis_port, cid, time.time())
        rasa_locks = RedisLockStore(port=redis_port, db=DB, password=REDIS_TEST_PASSWORD, key_prefix="brightline")
        async with rasa_locks.lock(cid):  # Rasa is handling a message of this customer...
            deleting = asyncio.create_task(privacy.delete_conversation(redis, cid))
            await asyncio.sleep(0.5)
            assert not deleting.done()
            await save_tracker(redis_port, cid, time.time(), text="one more")  # ...and saves at the end
        done = await asyncio.wait_for(deleting, 10)
        assert done.counts["tracker"] == 1
        assert not await redis.exists(privacy.tracker_key(cid), privacy.lock_key(cid))
        assert cid not in await stream_senders(redis, keys.EVENT_STREAM, "sender_id")

    run(redis_port, body)


def test_purge_goes_by_the_last_event_and_spares_chats_with_a_person(redis_port: int) -> None:
    now = time.time()
    old = now - 10 * DAY

    async def body(redis: Redis) -> None:
        queue = Queue(redis)
        await save_tracker(redis_port, "rest:old", old)
        await redis.xadd(keys.KPI_FACTS, {"f": json.dumps({"c": "rest:old", "t": old, "k": "u", "ch": "rest"})})
        await save_tracker(redis_port, "rest:new", now - 1 * DAY)
        await save_tracker(redis_port, "rest:assigned", old)
        await queue.enqueue(Card("rest:assigned", "asked_for_human", created_at=old))
        await Agents(redis).add("ann", "long enough pw")
        assert (await queue.claim("rest:assigned", "ann")).ok
        # A handoff record whose tracker is gone counts by its own times.
        await redis.hset(keys.chat("rest:orphan"), mapping={"state": "closed", "created_at": old, "closed_at": old})
        await redis.hset(keys.chat("rest:fresh-orphan"), mapping={"state": "bot", "created_at": now, "closed_at": now})
        old_conversation = now - 5 * DAY
        await save_tracker(redis_port, "rest:later", old_conversation)  # newest event 5 days ago

        assert sorted([c async for c in privacy.idle_conversations(redis, 7, now)]) == ["rest:old", "rest:orphan"]
        assert await privacy.purge_idle(redis, 7, now) == 2
        assert not await redis.exists(privacy.tracker_key("rest:old"), keys.chat("rest:orphan"))
        # The team lead's figures keep it: a month's figures must not lose the month's chats.
        assert (await privacy.locate(redis, ["rest:old"]))["rest:old"].counts()["kpi_facts"] == 1
        assert await redis.exists(privacy.tracker_key("rest:new"), privacy.tracker_key("rest:later")) == 2
        assert await redis.exists(privacy.tracker_key("rest:assigned"), keys.chat("rest:fresh-orphan")) == 2
        assert await privacy.purge_idle(redis, 7, now) == 0
        assert await privacy.purge_idle(redis, 4, now) == 1  # now rest:later is old enough

    run(redis_port, body)


def test_retention_loop_purges_and_survives_redis_errors(
    redis_port: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    real_purge = privacy.purge_idle
    calls: list[float] = []

    async def flaky_purge(redis: Redis, days: float, now: float | None = None) -> int:
        calls.append(time.monotonic())
        if len(calls) <= 2:
            raise RedisConnectionError("Redis went away")
        return await real_purge(redis, days, now)

    monkeypatch.setattr(privacy, "purge_idle", flaky_purge)

    async def body(redis: Redis) -> None:
        await save_tracker(redis_port, "rest:ancient", time.time() - 100 * DAY)
        loop = asyncio.create_task(privacy.retention_loop(redis, 30, interval_s=0.2, backoff_s=0.05))
        deadline = time.monotonic() + 10
        while await redis.exists(privacy.tracker_key("rest:ancient")) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not await redis.exists(privacy.tracker_key("rest:ancient"))
        # Backing off: 0.05 s, then 0.1 s. The event loop's timers may fire up to a millisecond early,
        # so the gaps are checked with that much slack (CI once saw 0.09985 s for a 0.1 s sleep).
        assert len(calls) >= 3
        assert calls[1] - calls[0] >= 0.045 and calls[2] - calls[1] >= 0.095
        assert calls[2] - calls[1] > calls[1] - calls[0]
        assert not loop.done()
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop

    with caplog.at_level("INFO", logger="handoff.privacy"):
        run(redis_port, body)
    assert "Redis failed (Redis went away)" in caplog.text
    assert "deleted 1 conversation(s)" in caplog.text


def test_cli_without_data_says_so_and_purge_needs_a_period(
    redis_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://:{REDIS_TEST_PASSWORD}@127.0.0.1:{redis_port}/{DB}")
    monkeypatch.setenv("RETENTION_DAYS", "0")
    assert privacy.main(["export", "whatsapp:000"]) == 1
    assert "nothing stored for conversation 'whatsapp:000'" in capsys.readouterr().err
    assert privacy.main(["delete", "whatsapp:000", "--yes"]) == 1
    assert privacy.main(["purge"]) == 1
    assert "--days" in capsys.readouterr().err

    asyncio.run(save_tracker(redis_port, "rest:old", time.time() - 10 * DAY))
    monkeypatch.setattr(sys, "stdin", io.StringIO("no\n"))
    assert privacy.main(["purge", "--days", "7"]) == 1
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))
    assert privacy.main(["purge", "--days", "7"]) == 0
    assert "deleted 1 conversation(s) idle for more than 7 days" in capsys.readouterr().out
    assert privacy.main(["export", "rest:old"]) == 1
