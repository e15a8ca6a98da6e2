"""Where the team lead's figures are kept: facts (``handoff/kpis.py``) in a Redis stream.

The KPI reader is the event stream's second consumer group (``kpis``), next to the one
that serves agents: it sees every event of every conversation, keeps the few facts the
figures need and appends them to ``kpi:facts``. Facts carry no message text, so they can
be kept for months (``KPI_RETENTION_DAYS``) after the conversations themselves are gone.

A stream entry's id is the time it was written, never earlier than the event it records,
so the facts of the conversations since some time are read from that time's id on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from handoff import keys
from handoff.kpis import facts_of, fold
from handoff.privacy import next_id

log = logging.getLogger(__name__)

READ_CHUNK = 5_000
CLOCK_SLACK_S = 3600  # replicas' clocks may disagree; read this much earlier
TRIM_EVERY_S = 600
FACT_EVENTS = frozenset(("session_started", "restart", "user", "slot", "pause", "resume", "bot"))
CUSTOMER_FACTS = 500  # the latest facts kept per customer for their history on the card


async def record_event(redis: Redis, fields: dict[str, str]) -> int:
    """The handler of the ``kpis`` group: append the facts of one stream entry."""
    if fields.get("event") not in FACT_EVENTS:
        return 0  # most of the stream (actions, featurization): nothing to parse
    try:
        event = json.loads(fields.get("data") or "{}")
    except (ValueError, TypeError, RecursionError):
        return 0
    if not isinstance(event, dict):
        return 0
    event.setdefault("sender_id", fields.get("sender_id"))
    facts = facts_of(event)
    if facts:
        pipe = redis.pipeline(transaction=False)
        for fact in facts:
            fields = {"f": json.dumps(fact, ensure_ascii=False, separators=(",", ":"))}
            pipe.xadd(keys.KPI_FACTS, fields)
            pipe.xadd(keys.customer_facts(fact["c"]), fields, maxlen=CUSTOMER_FACTS, approximate=True)
        await pipe.execute()
    return len(facts)


async def customer_history(redis: Redis, conversation_id: str, limit: int = 5) -> dict[str, Any]:
    """The customer's earlier conversations, for the handoff card: how many, and the last
    few with their handoff reason, team, rating and agent."""
    entries = await redis.xrange(keys.customer_facts(conversation_id))
    facts = []
    for _, fields in entries:
        try:
            facts.append(json.loads(fields.get(b"f") or fields.get("f")))
        except (TypeError, ValueError):
            continue
    earlier = fold(facts)[:-1]  # the last one is the conversation on the card
    return {
        "count": len(earlier),
        "handed_off": sum(c.handed_off for c in earlier),
        "recent": [
            {
                "started": c.started,
                "channel": c.channel,
                "topics": c.topics[:3],
                "reason": c.handoff.reason if c.handoff else None,
                "team": c.team,
                "agent": c.agent,
                "rating": c.rating,
            }
            for c in reversed(earlier[-limit:])
        ],
    }


async def read_facts(
    redis: Redis, since: float, stream: str = keys.KPI_FACTS, after: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Every fact written since ``since`` (seconds), or after entry ``after``, in the order
    written; and the id of the last one read (where the next read goes on from)."""
    start = next_id(after) if after else f"{max(0, int((since - CLOCK_SLACK_S) * 1000))}-0"
    out: list[dict[str, Any]] = []
    last: str | None = after
    while True:
        entries = await redis.xrange(stream, min=start, max="+", count=READ_CHUNK)
        for _entry_id, fields in entries:
            raw = fields.get(b"f") or fields.get("f")
            try:
                fact = json.loads(raw)
            except (TypeError, ValueError):
                continue
            if isinstance(fact, dict):
                out.append(fact)
        if entries:
            last = entries[-1][0].decode() if isinstance(entries[-1][0], bytes) else entries[-1][0]
        if len(entries) < READ_CHUNK:
            return out, last
        start = next_id(last)


async def trim(redis: Redis, days: float, now: float | None = None) -> None:
    """Forget facts older than ``days`` (0 keeps them all)."""
    if days <= 0:
        return
    cutoff = int(((now or time.time()) - days * 86400) * 1000)
    try:
        await redis.xtrim(keys.KPI_FACTS, minid=f"{cutoff}-0", approximate=True)
    except ResponseError as exc:  # Redis before 6.2 has no MINID
        log.warning("KPI facts not trimmed (this Redis has no XTRIM MINID): %s", exc)


async def trim_loop(redis: Redis, days: float, every: float = TRIM_EVERY_S) -> None:
    while True:
        try:
            await trim(redis, days)
        except Exception as exc:  # an outage: try again later
            log.warning("KPI facts not trimmed this time: %r", exc)
        await asyncio.sleep(every)
