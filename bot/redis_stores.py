"""Rasa's Redis tracker store and lock store, opened the one way our processes open Redis.

Rasa 3.6 builds its own ``redis.StrictRedis`` from ``endpoints.yml`` (host, port, password):
no Redis Sentinel, and no retry on a dropped connection. These subclasses keep Rasa's logic
and replace only the client with :meth:`bot.settings.RedisAddress.sync_client`, so Rasa
follows the primary through a failover exactly as the action server, the handoff service
and the event broker do. Configured in ``endpoints.yml`` by module path.

Saving a tracker costs one read instead of Rasa's two: Rasa's Redis store reads and parses
the stored tracker once to find the new events for the broker and again to merge earlier
sessions. Ours reads it once, and hands the broker all new events at once (one pipelined
round trip of XADDs instead of one per event, about seven a message).
"""

from __future__ import annotations

from typing import Any

from rasa.core.lock_store import DEFAULT_SOCKET_TIMEOUT_IN_SECONDS, RedisLockStore
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import (
    DialogueStateTracker,
    TrackerEventDiffEngine,
    get_trackers_for_conversation_sessions,
)

from bot.settings import load_settings


class TrackerStore(RedisTrackerStore):
    def __init__(
        self,
        domain: Domain,
        host: str | None = None,
        event_broker: Any = None,
        key_prefix: str | None = None,
        record_exp: float | None = None,
        **_: Any,
    ) -> None:
        super().__init__(domain, event_broker=event_broker, key_prefix=key_prefix, record_exp=record_exp)
        self.red = load_settings().redis.sync_client(decode_responses=True)

    async def save(self, tracker: DialogueStateTracker, timeout: float | None = None) -> None:
        """Rasa's ``RedisTrackerStore.save`` (stream the new events, merge earlier sessions,
        write), reading the stored tracker once."""
        if not timeout and self.record_exp:
            timeout = self.record_exp
        key = self.key_prefix + tracker.sender_id
        stored = self.red.get(key)
        prior = self.deserialise_tracker(tracker.sender_id, stored) if stored is not None else None
        if self.event_broker is not None:
            new_events = TrackerEventDiffEngine.event_difference(last_session(prior), tracker)
            self.publish(tracker.sender_id, new_events)
        if prior is not None:
            tracker = self._merge_trackers(prior, tracker)
        self.red.set(key, self.serialise_tracker(tracker), ex=timeout)

    def publish(self, sender_id: str, events: list[Event]) -> None:
        bodies = [{"sender_id": sender_id, **event.as_dict()} for event in events]
        publish_many = getattr(self.event_broker, "publish_many", None)
        if publish_many is not None:
            publish_many(bodies)
        else:
            for body in bodies:
                self.event_broker.publish(body)


def last_session(tracker: DialogueStateTracker | None) -> DialogueStateTracker | None:
    """What Rasa's ``retrieve`` returns: the tracker of the latest session only."""
    if tracker is None:
        return None
    sessions = get_trackers_for_conversation_sessions(tracker)
    return tracker if len(sessions) <= 1 else sessions[-1]


class LockStore(RedisLockStore):
    def __init__(self, endpoint_config: Any = None, **_: Any) -> None:
        options = dict(getattr(endpoint_config, "kwargs", None) or {})
        timeout = float(options.get("socket_timeout") or DEFAULT_SOCKET_TIMEOUT_IN_SECONDS)
        super().__init__(key_prefix=options.get("key_prefix"), socket_timeout=timeout)
        self.red = load_settings().redis.sync_client(timeout=timeout)
