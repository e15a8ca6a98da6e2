"""Rate limits, one rule in one place: every channel and the console's login ask here.

A limit is a token bucket kept in Redis (GCRA: one key per limited thing holding the
"theoretical arrival time"), so every replica of every process shares it and a limit costs
one round trip. ``burst`` messages may come at once; after that one per ``1 / rate``
seconds. A refused hit costs nothing: it does not push the sender's next slot further away,
so a flood never locks a customer out for longer than its own last second.

Redis' own clock decides (``TIME`` inside the script), so replicas with skewed clocks agree.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

# KEYS[1] the bucket; ARGV[1] seconds per token, ARGV[2] burst, ARGV[3] cost.
# Returns {allowed (1/0), milliseconds until the next hit would be allowed}.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - interval * burst
if allow_at > now then
  return {0, math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
return {1, 0}
"""


@dataclass(frozen=True)
class Limit:
    """``burst`` hits at once, refilled at ``per_minute`` hits a minute."""

    burst: int
    per_minute: float

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_minute <= 0:
            raise ValueError("a limit needs burst >= 1 and per_minute > 0")

    @property
    def interval_ms(self) -> float:
        return 60_000.0 / self.per_minute


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0  # seconds until a hit would be allowed again

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after)))


def parse_limit(text: str, name: str) -> Limit:
    """``"20/60"``: a burst of 20, then 60 a minute. Raises ``ValueError`` naming ``name``."""
    burst, sep, per_minute = text.partition("/")
    try:
        if not sep:
            raise ValueError
        return Limit(int(burst), float(per_minute))
    except ValueError:
        raise ValueError(f"{name} must look like BURST/PER_MINUTE (e.g. 20/60), got {text!r}") from None


class RateLimiter:
    """Limits hits per key within one ``scope`` (``"webchat:sender"``, ``"login:address"``)."""

    # Keys this process knows to be refused for a while; bounded, so a flood of distinct
    # keys cannot grow it.
    MAX_REMEMBERED = 10_000

    def __init__(self, redis: Redis, scope: str, limit: Limit) -> None:
        self.redis = redis
        self.scope = scope
        self.limit = limit
        self._script: Any = redis.register_script(_GCRA)
        self._refused_until: dict[str, float] = {}

    def key(self, key: str) -> str:
        return f"ratelimit:{self.scope}:{key[:200]}"

    async def hit(self, key: str, cost: int = 1) -> Decision:
        """Count one hit; raises ``redis.RedisError`` when Redis cannot be reached, so the
        caller decides whether that means "try again" (channels) or "refuse" (logins).

        A key refused a moment ago is refused again from memory until its wait is over:
        a flood's refusals then cost no Redis round trip (the answer is the same one Redis
        would give, since a refused hit changes nothing there)."""
        now = time.monotonic()
        until = self._refused_until.get(key)
        if until is not None:
            if now < until:
                return Decision(False, until - now)
            del self._refused_until[key]
        allowed, wait_ms = await self._script(
            keys=[self.key(key)], args=[self.limit.interval_ms, self.limit.burst, cost]
        )
        decision = Decision(bool(int(allowed)), int(wait_ms) / 1000.0)
        if not decision.allowed:
            if len(self._refused_until) >= self.MAX_REMEMBERED:
                self._refused_until = {k: u for k, u in self._refused_until.items() if u > now}
                if len(self._refused_until) >= self.MAX_REMEMBERED:
                    self._refused_until.clear()
            self._refused_until[key] = now + decision.retry_after
        return decision

    async def reset(self, key: str) -> None:
        self._refused_until.pop(key, None)
        await self.redis.delete(self.key(key))
