"""bot/redis_stores.py against Rasa's own Redis tracker store, on a real redis-server: the
same tracker stored and the same events streamed, with one read of the stored tracker per
save instead of two."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.broker import RedisStreamBroker
from bot.redis_stores import TrackerStore
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
