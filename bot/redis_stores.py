"""Rasa's Redis tracker store and lock store, opened the one way our processes open Redis.

Rasa 3.6 builds its own ``redis.StrictRedis`` from ``endpoints.yml`` (host, port, password):
no Redis Sentinel, and no retry on a dropped connection. These subclasses keep Rasa's logic
and replace only the client with :meth:`bot.settings.RedisAddress.sync_client`, so Rasa
follows the primary through a failover exactly as the action server, the handoff service
and the event broker do. Configured in ``endpoints.yml`` by module path.

Saving a tracker costs one read instead of Rasa's two: Rasa's Redis store reads and parses
the stored tracker once to find the new events for the broker and again to merge earlier
sessions. Ours reads it once, and writes the new events (XADDs onto the broker's stream)
and the tracker in one transaction: one round trip instead of one per event (about seven a
message) plus the write, and never events streamed for a tracker that was not saved.

Both stores await Redis (``redis.asyncio``) where Rasa's block: Rasa's sync client stopped
the whole server for each of a message's dozen round trips (a fifth of Rasa's time per
message at 50 conversations at once, in issue 12's profile), while other conversations'
turns could have run.

The lock store keeps Rasa's ticket lock (tickets served in the order they were issued, each
expiring after ``TICKET_LOCK_LIFETIME``) and its stored format, but each step is one Lua
script run atomically by Redis instead of Rasa's read, change in Python, write back:

* Rasa's get-then-set let two Rasa replicas handling the same conversation at once (a
  customer's message on one, an agent's reply appended through the other) draw the same
  ticket and both go ahead: two writers on one tracker, and one of them lost. Within one
  process the event loop cannot switch between the get and the set, which is why a single
  Rasa never showed it.
* A message took seven round trips (get, set; get; get, set, get, delete); now two (take a
  ticket, which says whether it is served at once; give it back), plus one a poll while
  another turn of the same conversation runs.
* A waiting turn looks again every 50 ms, not every second: an agent's reply that arrives
  while the bot answers the customer no longer waits a whole second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from rasa.core.lock import Ticket, TicketLock
from rasa.core.lock_store import DEFAULT_SOCKET_TIMEOUT_IN_SECONDS, LOCK_LIFETIME, LockError, RedisLockStore
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import (
    DialogueStateTracker,
    TrackerEventDiffEngine,
    get_trackers_for_conversation_sessions,
)
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

from bot.settings import load_settings


class OnThisLoop:
    """An asyncio Redis client for the running event loop (Rasa's server has one; a test may
    run several, one after the other or on several threads)."""

    def __init__(self, timeout: float | None = 5.0) -> None:
        self._timeout = timeout
        self._clients: dict[int, tuple[asyncio.AbstractEventLoop, AsyncRedis]] = {}

    def __call__(self) -> AsyncRedis:
        loop = asyncio.get_running_loop()
        held = self._clients.get(id(loop))
        if held is None or held[0] is not loop:
            self._clients = {k: v for k, v in self._clients.items() if not v[0].is_closed()}
            held = self._clients[id(loop)] = (loop, load_settings().redis.client(timeout=self._timeout))
        return held[1]


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
        self.red = load_settings().redis.sync_client(decode_responses=True)  # Rasa's rarer calls (keys)
        self.aio = OnThisLoop()

    async def _retrieve(self, sender_id: str, fetch_all_sessions: bool) -> DialogueStateTracker | None:
        """Rasa's, awaiting Redis instead of blocking the server while it answers."""
        stored = await self.aio().get(self.key_prefix + sender_id)
        if stored is None:
            return None
        tracker = self.deserialise_tracker(sender_id, stored)
        return tracker if fetch_all_sessions else last_session(tracker)

    async def save(self, tracker: DialogueStateTracker, timeout: float | None = None) -> None:
        """Rasa's ``RedisTrackerStore.save`` (stream the new events, merge earlier sessions,
        write), reading the stored tracker once and writing the events and the tracker in
        one transaction: one round trip, and never the events without the tracker."""
        if not timeout and self.record_exp:
            timeout = self.record_exp
        key = self.key_prefix + tracker.sender_id
        client = self.aio()
        stored = await client.get(key)
        prior = self.deserialise_tracker(tracker.sender_id, stored) if stored is not None else None
        writes = client.pipeline(transaction=True)
        if self.event_broker is not None:
            new_events = TrackerEventDiffEngine.event_difference(last_session(prior), tracker)
            self.publish(tracker.sender_id, new_events, writes)
        if prior is not None:
            tracker = self._merge_trackers(prior, tracker)
        writes.set(key, self.serialise_tracker(tracker), ex=timeout)
        await writes.execute()

    def publish(self, sender_id: str, events: list[Event], writes: Any = None) -> None:
        """The events onto ``writes`` (a pipeline) when the broker can, else published now."""
        bodies = [{"sender_id": sender_id, **event.as_dict()} for event in events]
        add_to = getattr(self.event_broker, "add_to", None)
        publish_many = getattr(self.event_broker, "publish_many", None)
        if add_to is not None and writes is not None:
            add_to(writes, bodies)
        elif publish_many is not None:
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


log = logging.getLogger(__name__)

POLL_SECONDS = 0.05

# The stored value is Rasa's TicketLock.dumps(): {"conversation_id": ..., "tickets": [ticket
# JSON strings]}, each ticket {"number": n, "expires": unix time}; a ticket has expired when
# now > expires. Times come from the caller, as in Rasa.
_LIVE_TICKETS = """
local function live(raw, now, skip)
  local tickets = {}
  if raw then
    for _, text in ipairs(cjson.decode(raw)['tickets'] or {}) do
      local ticket = cjson.decode(text)
      if ticket['expires'] >= now and ticket['number'] ~= skip then table.insert(tickets, ticket) end
    end
  end
  return tickets
end
local function save(key, conversation, tickets, now)
  if #tickets == 0 then redis.call('DEL', key) return end
  local texts, last = {}, now
  for i, ticket in ipairs(tickets) do
    texts[i] = cjson.encode({number = ticket['number'], expires = ticket['expires']})
    last = math.max(last, ticket['expires'])
  end
  -- gone a second after its last ticket expires: a process that died holding it leaves nothing
  local ttl = math.ceil((last - now) * 1000) + 1000
  redis.call('SET', key, cjson.encode({conversation_id = conversation, tickets = texts}), 'PX', ttl)
end
"""
TAKE_TICKET = (
    _LIVE_TICKETS
    + """
local tickets = live(redis.call('GET', KEYS[1]), tonumber(ARGV[1]), nil)
local number = 0
if #tickets > 0 then number = tickets[#tickets]['number'] + 1 end
table.insert(tickets, {number = number, expires = tonumber(ARGV[1]) + tonumber(ARGV[2])})
save(KEYS[1], ARGV[3], tickets, tonumber(ARGV[1]))
return {number, tickets[1]['number']}
"""
)
NOW_SERVING = (
    _LIVE_TICKETS
    + """
local tickets = live(redis.call('GET', KEYS[1]), tonumber(ARGV[1]), nil)
local mine = false
for _, ticket in ipairs(tickets) do
  if ticket['number'] == tonumber(ARGV[2]) then mine = true end
end
if not mine then return false end
return tickets[1]['number']
"""
)
GIVE_BACK = (
    _LIVE_TICKETS
    + """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local now = tonumber(ARGV[1])
save(KEYS[1], cjson.decode(raw)['conversation_id'], live(raw, now, tonumber(ARGV[2])), now)
return 1
"""
)


class LockStore(RedisLockStore):
    def __init__(self, endpoint_config: Any = None, **_: Any) -> None:
        options = dict(getattr(endpoint_config, "kwargs", None) or {})
        timeout = float(options.get("socket_timeout") or DEFAULT_SOCKET_TIMEOUT_IN_SECONDS)
        super().__init__(key_prefix=options.get("key_prefix"), socket_timeout=timeout)
        self.red = load_settings().redis.sync_client(timeout=timeout)  # Rasa's other calls
        self.aio = OnThisLoop(timeout)

    async def _run(self, script: str, key: str, *args: Any) -> Any:
        """One of the scripts, atomically (EVALSHA; the script is sent again after a restart)."""
        return await self.aio().register_script(script)(keys=[key], args=list(args))

    @asynccontextmanager
    async def lock(
        self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME, wait_time_in_seconds: float = POLL_SECONDS
    ) -> AsyncIterator[TicketLock]:
        """Rasa's ticket lock: wait until this turn's ticket is the first one not expired."""
        key = self.key_prefix + conversation_id
        wait = min(float(wait_time_in_seconds), POLL_SECONDS)
        try:
            ticket, serving = await self._run(TAKE_TICKET, key, time.time(), lock_lifetime, conversation_id)
        except Exception as exc:  # what Rasa raises, so its callers answer as they do today
            raise LockError(f"Error while acquiring lock. Error:\n{exc}") from exc
        try:
            while serving != ticket:
                await asyncio.sleep(wait)
                serving = await self._run(NOW_SERVING, key, time.time(), ticket)
                if serving is None:  # the lock, or this turn's ticket, expired meanwhile
                    raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")
            yield TicketLock(conversation_id, deque([Ticket(int(ticket), time.time() + lock_lifetime)]))
        finally:
            try:
                await self._run(GIVE_BACK, key, time.time(), ticket)
            except RedisError:  # the ticket expires by itself; the turn's own outcome stands
                log.warning("lock for %s not given back; it expires in %.0f s", conversation_id, lock_lifetime)
