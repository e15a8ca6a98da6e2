"""Read the Redis stream of tracker events with a consumer group.

An entry is acknowledged only after it was handled, so if the service dies midway the
entry stays pending: on restart the same consumer first re-reads its own pending entries,
then claims entries another replica left pending for too long, then follows new ones.
A customer message written while the service was down is therefore delivered late,
never lost.

The reader outlives Redis outages: on a lost connection it retries with backoff (logging
once per outage, not per attempt), re-creates the group if Redis came back without it
(NOGROUP), and goes on from its own pending entries. :meth:`EventConsumer.problem` says
why it is not reading, for ``/health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from handoff import keys

log = logging.getLogger(__name__)

# Redis is not there (or not answering): wait and try again.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, asyncio.TimeoutError)
RETRY_FIRST, RETRY_MAX = 0.2, 5.0  # seconds between reconnect attempts, doubling
STALE_AFTER = 5.0  # seconds without a read (and not busy in a handler): something is wrong
HANDLER_STUCK_AFTER = 90.0  # one handler call this long (Rasa times out at 30 s): stuck

Handler = Callable[[dict[str, str]], Awaitable[None]]


async def stop_task(task: asyncio.Task, every: float = 0.5) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling again if it goes on.

    redis-py 4.6 can swallow a cancellation: taking a pooled connection polls it under
    ``async_timeout(0)``, which turns a cancel that lands at that moment into its own
    timeout. A single ``cancel()`` of a task that talks to Redis may therefore be lost.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every)
    if not task.cancelled() and task.exception() is not None:
        log.error("%s ended with %r", task.get_name(), task.exception())


async def all_or_none(work: Iterable[Awaitable[None]]) -> None:
    """Run ``work`` at once; if one raises, cancel the rest before raising it, so nothing
    goes on handling entries after the reader has given up on its batch (3.10 has no TaskGroup)."""
    tasks = [asyncio.ensure_future(w) for w in work]
    if not tasks:
        return
    try:
        finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:  # an exception, or the reader itself cancelled
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if task in finished and not task.cancelled() and task.exception() is not None:
            raise task.exception()


def _decode(fields: dict) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in fields.items()
    }


class EventConsumer:
    def __init__(
        self,
        redis: Redis,
        consumer: str,
        handler: Handler,
        stream: str = keys.EVENT_STREAM,
        group: str = keys.EVENT_GROUP,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
    ) -> None:
        self.redis = redis
        self.consumer = consumer
        self.handler = handler
        self.stream = stream
        self.group = group
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.handled = 0
        self.last_id: bytes | str | None = None  # the newest entry this reader has seen
        self.outage: str | None = None  # why the stream cannot be read, while it cannot
        self._down_since = 0.0
        self._delay = RETRY_FIRST
        self._last_read = 0.0
        self._handling_since: float | None = None
        self._running = False

    async def ensure_group(self) -> None:
        """Create the group the first time; it persists in Redis after.

        New, it starts at the stream's end. Re-created because Redis lost it, it starts
        after the last entry this reader saw, so what came since is not skipped.
        """
        try:
            await self.redis.xgroup_create(self.stream, self.group, id=self.last_id or "$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def problem(self, now: float | None = None) -> str | None:
        """Why the reader is not following the stream, or ``None`` while it is."""
        now = asyncio.get_running_loop().time() if now is None else now
        if not self._running:
            return "the event stream reader is not running"
        if self.outage:
            return self.outage
        if self._handling_since is not None:
            busy = now - self._handling_since
            return f"stuck handling one event for {busy:.0f} s" if busy > HANDLER_STUCK_AFTER else None
        idle = now - self._last_read
        return f"no read from the event stream for {idle:.0f} s" if idle > STALE_AFTER else None

    async def _handle(self, entry_id: bytes | str, fields: dict) -> None:
        self._handling_since = asyncio.get_running_loop().time()
        try:
            handled = await self._run(entry_id, fields)
        finally:
            self._handling_since = None
        if handled:
            await self.redis.xack(self.stream, self.group, entry_id)
            self.handled += 1
            self._read_ok()

    async def _run(self, entry_id: bytes | str, fields: dict) -> bool:
        """Handle one entry; ``False`` if it failed (it stays pending, to be retried)."""
        try:
            await self.handler(_decode(fields))
        except REDIS_DOWN:
            raise  # an outage, not a bad event: the entry stays pending, read again after
        except Exception:
            log.exception("event %s not handled; it stays pending and will be retried", entry_id)
            return False
        return True

    async def _handle_batch(self, entries: list) -> None:
        """Handle a read's entries, then acknowledge them with one XACK (one round trip per
        batch, not per event). A crash before the XACK leaves them pending: they are handled
        again after a restart, which every handler tolerates (at least once).

        Each conversation's entries are handled in order, different conversations' at the
        same time: a handler mostly waits on Redis, and one after the other, 200 customers
        handed off at once left the last of them seconds behind (issue 12's benchmark).
        """
        done: list = []
        by_conversation: dict[object, list] = {}
        for entry_id, fields in entries:
            self.last_id = entry_id
            sender = fields.get(b"sender_id", fields.get("sender_id"))
            by_conversation.setdefault(sender, []).append((entry_id, fields))

        async def in_order(items: list) -> None:
            for entry_id, fields in items:
                if await self._run(entry_id, fields):
                    done.append(entry_id)

        self._handling_since = asyncio.get_running_loop().time()
        try:
            await all_or_none(in_order(items) for items in by_conversation.values())
        finally:
            self._handling_since = None
            if done:
                with contextlib.suppress(*REDIS_DOWN):
                    await self.redis.xack(self.stream, self.group, *done)
                    self.handled += len(done)
                    self._read_ok()

    def _read_ok(self) -> None:
        self._last_read = asyncio.get_running_loop().time()

    async def _drain_own_pending(self) -> None:
        """Re-handle what this consumer had read but not acknowledged before it stopped.

        Walks forward from the last id seen, so an entry that fails again stays pending
        (for the next start, or another replica's claim) without blocking the rest.
        """
        start: bytes | str = "0"
        while True:
            reply = await self.redis.xreadgroup(self.group, self.consumer, {self.stream: start}, count=100)
            entries = reply[0][1] if reply else []
            if not entries:
                return
            for entry_id, fields in entries:
                start = entry_id
                if fields:
                    await self._handle(entry_id, fields)
                else:  # trimmed from the stream while pending: nothing left to deliver
                    await self.redis.xack(self.stream, self.group, entry_id)

    async def _claim_abandoned(self) -> None:
        start = "0-0"
        while True:
            reply = await self.redis.xautoclaim(
                self.stream, self.group, self.consumer, self.claim_idle_ms, start_id=start, count=100
            )
            start, entries = reply[0], reply[1]
            for entry_id, fields in entries:
                if fields:
                    await self._handle(entry_id, fields)
            if start in (b"0-0", "0-0") or not entries:
                return

    async def run(self) -> None:
        """Follow the stream until cancelled, through any number of Redis outages."""
        self._running, self._last_read = True, asyncio.get_running_loop().time()
        try:
            while True:
                try:
                    await self._follow()
                except ResponseError as exc:
                    # NOGROUP: Redis came back without the group (or someone deleted the
                    # stream); UNBLOCKED: the stream was deleted while we waited on it.
                    if "NOGROUP" in str(exc) or "UNBLOCKED" in str(exc):
                        log.warning("event stream: group %r is gone from Redis; creating it again", self.group)
                    else:
                        self._failed(f"event stream reader failing: {exc}", exc)
                except REDIS_DOWN as exc:
                    self._failed(f"Redis unreachable: {exc or type(exc).__name__}", exc)
                except Exception as exc:  # a bug must not stop the reader for good either
                    self._failed(f"event stream reader failing: {exc!r}", exc, trace=True)
                await asyncio.sleep(self._delay)  # then _follow again, from ensure_group
                self._delay = min(RETRY_MAX, self._delay * 2)
        finally:
            self._running = False

    def _failed(self, reason: str, exc: BaseException, trace: bool = False) -> None:
        """Note an outage; log it once, when it starts, not on every attempt."""
        if self.outage is None:
            self._down_since = asyncio.get_running_loop().time()
            log.warning(
                "event stream: %s; retrying with backoff until it works", reason, exc_info=exc if trace else None
            )
        self.outage = reason

    def _connected(self) -> None:
        if self.outage is not None:
            down = asyncio.get_running_loop().time() - self._down_since
            log.info("event stream: reading again after %.1f s", down)
            self.outage = None
        self._delay = RETRY_FIRST
        self._read_ok()

    async def _follow(self) -> None:
        await self.ensure_group()
        self._connected()
        await self._drain_own_pending()
        await self._claim_abandoned()
        last_claim = asyncio.get_running_loop().time()
        while True:
            reply = await self.redis.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=100, block=self.block_ms
            )
            self._read_ok()
            for _, entries in reply or []:
                await self._handle_batch(entries)
            now = asyncio.get_running_loop().time()
            if now - last_claim > self.claim_idle_ms / 1000:
                last_claim = now
                await self._claim_abandoned()
