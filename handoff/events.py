"""Read the Redis stream of tracker events with a consumer group.

An entry is acknowledged only after it was handled, so if the service dies midway the
entry stays pending: on restart the same consumer first re-reads its own pending entries,
then claims entries another replica left pending for too long, then follows new ones.
A customer message written while the service was down is therefore delivered late,
never lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from handoff import keys

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, str]], Awaitable[None]]


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

    async def ensure_group(self) -> None:
        """Create the group at the stream's end the first time; it persists in Redis after."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _handle(self, entry_id: bytes | str, fields: dict) -> None:
        try:
            await self.handler(_decode(fields))
        except Exception:
            log.exception("event %s not handled; it stays pending and will be retried", entry_id)
            return
        await self.redis.xack(self.stream, self.group, entry_id)
        self.handled += 1

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
        await self.ensure_group()
        await self._drain_own_pending()
        await self._claim_abandoned()
        last_claim = asyncio.get_running_loop().time()
        while True:
            reply = await self.redis.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=100, block=self.block_ms
            )
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    await self._handle(entry_id, fields)
            now = asyncio.get_running_loop().time()
            if now - last_claim > self.claim_idle_ms / 1000:
                last_claim = now
                await self._claim_abandoned()
