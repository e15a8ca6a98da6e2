"""Customer data rights: export or delete everything Redis holds about one conversation,
and delete conversations nobody has touched for ``RETENTION_DAYS``.

    python -m handoff.privacy export CONVERSATION [--out FILE]   # one JSON document
    python -m handoff.privacy delete CONVERSATION [--yes]
    python -m handoff.privacy purge [--days N] [--yes]            # N defaults to RETENTION_DAYS

A conversation id is the tracker's sender id, exactly as stored (``webchat:3f2a…``,
``whatsapp:4915…``, ``rest:alice``); it is an opaque string and may contain ``:``.

What is found, by kind. Keys the handoff side does not own are spelled here, with the
module their format comes from; ``tests/test_privacy.py`` checks each against its source.

``tracker``        ``brightline:tracker:{id}``: Rasa's ``RedisTrackerStore`` keys are
                   ``{key_prefix}:tracker:{sender_id}``, key_prefix ``brightline`` in
                   endpoints.yml (rasa/core/tracker_store.py)
``lock``           ``brightline:lock:{id}``: Rasa's ``RedisLockStore``, same prefix rule
                   (rasa/core/lock_store.py); it exists only while a message is handled
``events``         entries of ``brightline:events`` whose ``sender_id`` is the id (bot/broker.py)
``handoff_chat``   ``handoff:chat:{id}``: state, agent, card, CSAT score (handoff/keys.py)
``handoff_queue``  the id in ``handoff:queue``
``agent_chats``    the id in any ``handoff:agent:{name}:chats``
``unread``         the id's field in any ``handoff:unread:{name}``
``csat``           entries of ``handoff:csat`` whose ``conversation_id`` is the id
``channel_seen``   de-duplication markers: ``channel:seen:{id}:{message id}``
                   (bot/channels/guard.py ``MessageLedger``), ``channel:seen:webchat:{id}:…``
                   (bot/channels/webchat.py before ids were namespaced), and
                   ``channel:seen:{whatsapp|messenger}:{message id}`` for the message ids in
                   the tracker (bot/channels/meta.py ``seen_key``: by Meta's message id only)
``rate_limit``     ``ratelimit:{channel}:sender:{id}`` (bot/ratelimit.py, bot/channels/guard.py)

Not per conversation, so not covered: rate limits per client address and console logins
(``ratelimit:*:address:*``), which expire within minutes; Redis' AOF and RDB files keep
deleted data until Redis rewrites them (``BGREWRITEAOF``).

Deleting holds Rasa's own lock for the conversation (a ticket in its lock store), so a
message being handled cannot save the tracker back after it was deleted. A ``:`` inside
ids makes ``channel:seen:{id}:{message id}`` ambiguous when one id is another id plus
``:…``; a marker goes to the longest such id that has a tracker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rasa.core.lock_store import LockError, RedisLockStore
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection
from redis.exceptions import RedisError

from handoff import keys
from handoff.queue import ASSIGNED, WAITING

log = logging.getLogger(__name__)

RASA_KEY_PREFIX = "brightline"  # tracker_store / lock_store ``key_prefix`` in endpoints.yml
TRACKER_PREFIX = f"{RASA_KEY_PREFIX}:tracker:"
LOCK_PREFIX = f"{RASA_KEY_PREFIX}:lock:"
SEEN_PREFIX = "channel:seen:"
CHANNELS = ("webchat", "rest", "whatsapp", "messenger")
META_CHANNELS = ("whatsapp", "messenger")

KINDS = (
    "tracker",
    "lock",
    "events",
    "handoff_chat",
    "handoff_queue",
    "agent_chats",
    "unread",
    "csat",
    "kpi_facts",
    "kpi_customer",
    "notes",
    "media",
    "channel_state",
    "channel_seen",
    "rate_limit",
)
WHOLE_KEYS = (
    "tracker",
    "lock",
    "handoff_chat",
    "notes",
    "kpi_customer",
    "media",
    "channel_state",
    "channel_seen",
    "rate_limit",
)

BATCH = 1000  # stream entries per XRANGE, keys per SCAN step, ids per XDEL
PURGE_BATCH = 200  # conversations deleted together (one pass over each stream)
LOCK_LIFETIME_S = 60.0  # our ticket in Rasa's lock store expires after this if we crash
DAY_S = 86400.0


def tracker_key(conversation_id: str) -> str:
    return TRACKER_PREFIX + conversation_id


def lock_key(conversation_id: str) -> str:
    return LOCK_PREFIX + conversation_id


def rate_limit_keys(conversation_id: str) -> list[str]:
    """Every channel's per-conversation bucket; the id's own channel is the prefix."""
    channels = dict.fromkeys([conversation_id.partition(":")[0], *CHANNELS])
    return [f"ratelimit:{channel}:sender:{conversation_id[:200]}" for channel in channels if channel]


def meta_seen_keys(events: Iterable[dict[str, Any]]) -> set[str]:
    """Markers the Meta channels keep by message id alone, for the tracker's user messages."""
    found: set[str] = set()
    for event in events:
        message_id = event.get("message_id") if event.get("event") == "user" else None
        if isinstance(message_id, str) and message_id:
            found.update(f"{SEEN_PREFIX}{channel}:{message_id}" for channel in META_CHANNELS)
    return found


def seen_candidates(key: str) -> list[str]:
    """Every conversation id a ``channel:seen:…`` marker could belong to, shortest first:
    ``channel:seen:{id}:{message id}`` and the older ``channel:seen:webchat:{id}:{client id}``.
    Bare channel names are never taken for an id (that would claim every marker)."""
    if not key.startswith(SEEN_PREFIX):
        return []
    rest = key[len(SEEN_PREFIX) :]
    tails = [rest, rest[len("webchat:") :]] if rest.startswith("webchat:") else [rest]
    found: set[str] = set()
    for tail in tails:
        colon = tail.find(":")
        while colon != -1:
            found.add(tail[:colon])
            colon = tail.find(":", colon + 1)
    return sorted(found - set(CHANNELS), key=len)


def seen_owner(key: str, conversation_ids: set[str]) -> str | None:
    """The longest of ``conversation_ids`` that the marker could belong to."""
    owners = [candidate for candidate in seen_candidates(key) if candidate in conversation_ids]
    return owners[-1] if owners else None


def tracker_events(raw: str | bytes | None) -> list[dict[str, Any]]:
    """The events of a stored tracker (Rasa stores ``{"events": [...], "name": id}``)."""
    if raw is None:
        return []
    data = json.loads(raw)
    events = data.get("events") if isinstance(data, dict) else None
    return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []


def last_event_time(events: list[dict[str, Any]]) -> float:
    """The newest event's timestamp; 0 for a tracker without any."""
    times = [e["timestamp"] for e in events if isinstance(e.get("timestamp"), int | float)]
    return float(max(times, default=0.0))


@dataclass
class Found:
    """Where one conversation's data is, by kind: whole keys (tracker, handoff_chat, …),
    the containers holding its id (handoff_queue, agent_chats, unread), or stream entry
    ids (events, csat)."""

    conversation_id: str
    items: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in KINDS})

    def counts(self) -> dict[str, int]:
        return {kind: len(self.items[kind]) for kind in KINDS}

    @property
    def empty(self) -> bool:
        return not any(self.items.values())


@dataclass
class Deletion:
    conversations: list[str] = field(default_factory=list)  # ids of which something was deleted
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    skipped: list[str] = field(default_factory=list)  # busy: Rasa's lock could not be taken

    def add(self, found: Found) -> None:
        if not found.empty:
            self.conversations.append(found.conversation_id)
        for kind, count in found.counts().items():
            self.counts[kind] += count


# --- finding --------------------------------------------------------------------------------


async def locate(
    redis: Redis, conversation_ids: Iterable[str], *, with_lock: bool = True, with_figures: bool = True
) -> dict[str, Found]:
    """Everything stored about each conversation; one pass over each stream for all ids.

    ``with_figures``: also the team lead's facts about it (``kpi:facts``: no message text but
    the conversation id, and a rating's comment). An erasure request removes them; the
    retention purge leaves them to their own retention (``KPI_RETENTION_DAYS``), so a month's
    figures do not lose the conversations deleted in that month."""
    found = {cid: Found(cid) for cid in dict.fromkeys(conversation_ids)}
    if not found:
        return found
    ids = set(found)
    exact: dict[str, tuple[str, str]] = {}  # key -> (kind, conversation id)
    meta_seen: dict[str, str] = {}
    for cid in found:
        exact[tracker_key(cid)] = ("tracker", cid)
        if with_lock:
            exact[lock_key(cid)] = ("lock", cid)
        exact[keys.chat(cid)] = ("handoff_chat", cid)
        exact[keys.notes(cid)] = ("notes", cid)
        # The Meta channels' windows and profile names (bot/channels/window.py, messenger.py).
        exact[f"channel:last_inbound:{cid}"] = ("channel_state", cid)
        exact[f"channel:last_message:{cid}"] = ("channel_state", cid)
        exact[f"channel:profile:{cid}"] = ("channel_state", cid)
        if with_figures:
            exact[keys.customer_facts(cid)] = ("kpi_customer", cid)
        exact.update((key, ("rate_limit", cid)) for key in rate_limit_keys(cid))
        events = await _stored_events(redis, cid)
        meta_seen.update((key, cid) for key in meta_seen_keys(events))
    names = list(exact)
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.exists(name)
    for cid in found:
        pipe.zscore(keys.QUEUE, cid)
    replies = await pipe.execute()
    for name, present in zip(names, replies[: len(names)], strict=True):
        if present:
            kind, cid = exact[name]
            found[cid].items[kind].append(name)
    for cid, score in zip(found, replies[len(names) :], strict=True):
        if score is not None:
            found[cid].items["handoff_queue"].append(keys.QUEUE)

    async for key in _scan(redis, keys.agent_chats("*")):
        for member in await redis.smembers(key):
            if (cid := _s(member)) in ids:
                found[cid].items["agent_chats"].append(key)
    async for key in _scan(redis, keys.unread("*")):
        for member in await redis.hkeys(key):
            if (cid := _s(member)) in ids:
                found[cid].items["unread"].append(key)
    async for key in _scan(redis, "media:*"):  # files customers sent (bot/channels/media.py)
        if (cid := _s(await redis.hget(key, "conversation") or b"")) in ids:
            found[cid].items["media"].append(key)
    async for key in _scan(redis, SEEN_PREFIX + "*"):
        owner = meta_seen.get(key) or await _seen_owner_in(redis, key, ids)
        if owner is not None:
            found[owner].items["channel_seen"].append(key)
    async for entry_id, fields in stream_entries(redis, keys.EVENT_STREAM):
        if (cid := _s(fields.get(b"sender_id", fields.get("sender_id", "")))) in ids:
            found[cid].items["events"].append(entry_id)
    async for entry_id, fields in stream_entries(redis, keys.CSAT):
        if (cid := _s(fields.get(b"conversation_id", fields.get("conversation_id", "")))) in ids:
            found[cid].items["csat"].append(entry_id)
    if with_figures:
        async for entry_id, fields in stream_entries(redis, keys.KPI_FACTS):
            if (cid := fact_conversation(fields)) in ids:
                found[cid].items["kpi_facts"].append(entry_id)
    return found


def fact_conversation(fields: dict) -> str | None:
    """The conversation of a ``kpi:facts`` entry (handoff/kpi_log.py)."""
    try:
        fact = json.loads(_s(fields.get(b"f", fields.get("f", b"{}"))))
    except (TypeError, ValueError):
        return None
    return fact.get("c") if isinstance(fact, dict) else None


async def _seen_owner_in(redis: Redis, key: str, ids: set[str]) -> str | None:
    """``seen_owner``, unless a longer id that has a tracker of its own fits the marker too
    (``channel:seen:rest:a:x:m1`` is conversation ``rest:a:x``'s if that exists)."""
    owner = seen_owner(key, ids)
    if owner is None:
        return None
    longer = [tracker_key(c) for c in seen_candidates(key) if len(c) > len(owner)]
    if longer and await redis.exists(*longer):
        return None
    return owner


async def _stored_events(redis: Redis, conversation_id: str) -> list[dict[str, Any]]:
    try:
        return tracker_events(await redis.get(tracker_key(conversation_id)))
    except (ValueError, TypeError):
        log.warning("the tracker of %r is not valid JSON; its message ids are not known", conversation_id)
        return []


async def _scan(redis: Redis, pattern: str) -> AsyncIterator[str]:
    async for key in redis.scan_iter(match=pattern, count=BATCH):
        yield _s(key)


async def stream_entries(redis: Redis, stream: str) -> AsyncIterator[tuple[str, dict]]:
    """Every entry, oldest first, ``BATCH`` at a time (memory stays bounded)."""
    start = "-"
    while True:
        entries = await redis.xrange(stream, min=start, max="+", count=BATCH)
        for entry_id, fields in entries:
            yield _s(entry_id), fields
        if len(entries) < BATCH:
            return
        start = next_id(_s(entries[-1][0]))


def next_id(entry_id: str) -> str:
    """The smallest id after ``entry_id`` (``(id`` needs Redis 6.2; this works on 6.0)."""
    millis, _, seq = entry_id.partition("-")
    return f"{millis}-{int(seq or 0) + 1}"


# --- export ---------------------------------------------------------------------------------


async def export_conversation(redis: Redis, conversation_id: str) -> dict[str, Any]:
    """One JSON-ready document with everything stored about the conversation, by kind."""
    found = (await locate(redis, [conversation_id]))[conversation_id]
    items: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for kind in ("tracker", "lock"):
        for key in found.items[kind]:
            items[kind].append({"key": key, "value": _json_or_text(await redis.get(key))})
    for key in found.items["handoff_chat"]:
        value = {_s(k): _s(v) for k, v in (await redis.hgetall(key)).items()}
        if "card" in value:
            value["card"] = _json_or_text(value["card"])
        items["handoff_chat"].append({"key": key, "value": value})
    for key in found.items["handoff_queue"]:
        items["handoff_queue"].append({"key": key, "score": await redis.zscore(key, conversation_id)})
    for key in found.items["agent_chats"]:
        items["agent_chats"].append({"key": key, "agent": key.removeprefix(keys.agent("")).removesuffix(":chats")})
    for key in found.items["unread"]:
        count = await redis.hget(key, conversation_id)
        items["unread"].append({"key": key, "agent": key.removeprefix(keys.unread("")), "count": _s(count)})
    for key in found.items["media"]:  # what was stored, not the file itself
        names = ("mime", "name", "size", "kind", "at")
        info = await redis.hmget(key, *names)
        fields = {name: None if v is None else _s(v) for name, v in zip(names, info, strict=True)}
        items["media"].append({"key": key, **fields})
    for key in found.items["kpi_customer"]:
        facts = [_json_or_text(fields.get(b"f", fields.get("f"))) for _, fields in await redis.xrange(key)]
        items["kpi_customer"].append({"key": key, "facts": facts})
    for key in found.items["channel_state"]:
        items["channel_state"].append({"key": key, "value": _s(await redis.get(key) or b"")})
    for key in found.items["notes"]:
        items["notes"].append({"key": key, "value": [_json_or_text(n) for n in await redis.lrange(key, 0, -1)]})
    for key in found.items["channel_seen"] + found.items["rate_limit"]:
        kind = "channel_seen" if key.startswith(SEEN_PREFIX) else "rate_limit"
        value, ttl = await redis.get(key), await redis.ttl(key)
        items[kind].append({"key": key, "value": None if value is None else _s(value), "ttl_s": ttl})
    for kind, stream in (("events", keys.EVENT_STREAM), ("csat", keys.CSAT), ("kpi_facts", keys.KPI_FACTS)):
        for chunk in _chunks(found.items[kind], BATCH):
            pipe = redis.pipeline(transaction=False)
            for entry_id in chunk:
                pipe.xrange(stream, min=entry_id, max=entry_id)
            for reply in await pipe.execute():
                for entry_id, fields in reply:
                    entry = {_s(k): _s(v) for k, v in fields.items()}
                    if "data" in entry:
                        entry["data"] = _json_or_text(entry["data"])
                    items[kind].append({"id": _s(entry_id), "stream": stream, "fields": entry})
    return {
        "conversation_id": conversation_id,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "found": not found.empty,
        "counts": found.counts(),
        "items": items,
    }


# --- deletion -------------------------------------------------------------------------------


def rasa_lock_store(redis: Redis) -> RedisLockStore:
    """Rasa's own lock store on the same Redis, so our ticket queues behind Rasa's."""
    pool = redis.connection_pool
    kwargs = pool.connection_kwargs
    return RedisLockStore(
        host=kwargs.get("host", "localhost"),
        port=int(kwargs.get("port", 6379)),
        db=int(kwargs.get("db", 0)),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        use_ssl=issubclass(pool.connection_class, SSLConnection),
        key_prefix=RASA_KEY_PREFIX,
    )


async def delete_conversations(
    redis: Redis,
    conversation_ids: Iterable[str],
    still: Callable[[str], Awaitable[bool]] | None = None,
    with_figures: bool = True,
) -> Deletion:
    """Delete everything stored about the conversations.

    Each conversation is deleted while holding Rasa's lock for it, so no message handled
    at the same moment saves its tracker back. ``still`` is asked again under the lock
    (purge: "is it still idle?"); a conversation it rejects is left alone.
    """
    result = Deletion()
    store = rasa_lock_store(redis)
    try:
        async with contextlib.AsyncExitStack() as held:
            chosen: list[str] = []
            for cid in dict.fromkeys(conversation_ids):
                had_lock = await redis.exists(lock_key(cid))
                try:
                    await held.enter_async_context(
                        store.lock(cid, lock_lifetime=LOCK_LIFETIME_S, wait_time_in_seconds=0.05)
                    )
                except LockError:
                    result.skipped.append(cid)
                    continue
                if still is None or await still(cid):
                    chosen.append(cid)
                    if had_lock:  # stale, or of a message we waited for: gone when we release
                        result.counts["lock"] += 1
            found = await locate(redis, chosen, with_lock=False, with_figures=with_figures)
            await _remove(redis, found.values())
            for item in found.values():
                result.add(item)
    finally:
        store.red.close()
    return result


async def delete_conversation(redis: Redis, conversation_id: str) -> Deletion:
    return await delete_conversations(redis, [conversation_id])


async def _remove(redis: Redis, found: Iterable[Found]) -> None:
    found = [item for item in found if not item.empty]
    if not found:
        return
    pipe = redis.pipeline(transaction=True)
    for item in found:
        whole = [key for kind in WHOLE_KEYS for key in item.items[kind]]
        if whole:
            pipe.delete(*whole)
        if item.items["handoff_queue"]:
            pipe.zrem(keys.QUEUE, item.conversation_id)
        for key in item.items["agent_chats"]:
            pipe.srem(key, item.conversation_id)
        for key in item.items["unread"]:
            pipe.hdel(key, item.conversation_id)
    await pipe.execute()
    for kind, stream in (("events", keys.EVENT_STREAM), ("csat", keys.CSAT), ("kpi_facts", keys.KPI_FACTS)):
        for chunk in _chunks([entry for item in found for entry in item.items[kind]], BATCH):
            await redis.xdel(stream, *chunk)


# --- retention ------------------------------------------------------------------------------


async def is_idle(redis: Redis, conversation_id: str, cutoff: float) -> bool:
    """Nothing happened since ``cutoff`` and no person is (or is about to be) on it."""
    raw = await redis.get(tracker_key(conversation_id))
    chat = {_s(k): _s(v) for k, v in (await redis.hgetall(keys.chat(conversation_id))).items()}
    if raw is not None:
        try:
            last = last_event_time(tracker_events(raw))
        except (ValueError, TypeError):
            log.warning("the tracker of %r is not valid JSON; it is kept", conversation_id)
            return False
    elif chat:  # a handoff record whose tracker is already gone
        last = max(_float(chat.get(name)) for name in ("created_at", "assigned_at", "closed_at"))
    else:
        return False
    if last >= cutoff or chat.get("state") in (WAITING, ASSIGNED):
        return False
    return await redis.zscore(keys.QUEUE, conversation_id) is None


async def idle_conversations(redis: Redis, days: float, now: float | None = None) -> AsyncIterator[str]:
    """Conversations whose last tracker event is older than ``days``; handoff records left
    without a tracker count by their own times."""
    cutoff = (time.time() if now is None else now) - days * DAY_S
    async for key in _scan(redis, TRACKER_PREFIX + "*"):
        cid = key[len(TRACKER_PREFIX) :]
        if await is_idle(redis, cid, cutoff):
            yield cid
    async for key in _scan(redis, keys.chat("*")):
        cid = key[len(keys.chat("")) :]
        if not await redis.exists(tracker_key(cid)) and await is_idle(redis, cid, cutoff):
            yield cid


async def purge(
    redis: Redis, conversation_ids: AsyncIterator[str] | Iterable[str], days: float, now: float | None = None
) -> Deletion:
    """Delete the given conversations in batches, each only if still idle under its lock."""
    cutoff = (time.time() if now is None else now) - days * DAY_S
    total = Deletion()

    async def still_idle(cid: str) -> bool:
        return await is_idle(redis, cid, cutoff)

    async def flush(batch: list[str]) -> None:
        done = await delete_conversations(redis, batch, still=still_idle, with_figures=False)
        total.conversations += done.conversations
        total.skipped += done.skipped
        for kind, count in done.counts.items():
            total.counts[kind] += count

    batch: list[str] = []
    if isinstance(conversation_ids, AsyncIterator):
        async for cid in conversation_ids:
            batch.append(cid)
            if len(batch) >= PURGE_BATCH:
                await flush(batch)
                batch = []
    else:
        for cid in conversation_ids:
            batch.append(cid)
            if len(batch) >= PURGE_BATCH:
                await flush(batch)
                batch = []
    if batch:
        await flush(batch)
    return total


async def purge_idle(redis: Redis, days: float, now: float | None = None) -> int:
    """Delete every conversation idle for more than ``days`` days (not waiting for or with
    an agent); returns how many were deleted."""
    if days <= 0:
        raise ValueError("days must be positive; RETENTION_DAYS 0 means keep forever")
    return len((await purge(redis, idle_conversations(redis, days, now), days, now)).conversations)


async def retention_loop(
    redis: Redis, days: float, interval_s: float = 3600.0, backoff_s: float = 1.0, max_backoff_s: float = 300.0
) -> None:
    """Run :func:`purge_idle` every ``interval_s`` until cancelled; ``days`` <= 0 does nothing.

    Replicas share a lease in Redis, so one of them purges per interval. A Redis error is
    logged and retried with exponential backoff; any other error waits for the next interval.
    """
    if days < 0:
        raise ValueError("RETENTION_DAYS must be 0 (keep forever) or a positive number of days")
    if days == 0:
        log.info("retention off (RETENTION_DAYS=0): conversations are kept")
        return
    token = secrets.token_hex(8)
    delay = backoff_s
    while True:
        try:
            if await _take_lease(redis, token, max(1, int(interval_s * 0.9))):
                deleted = await purge_idle(redis, days)
                log.info("retention: deleted %d conversation(s) idle for more than %g days", deleted, days)
            delay = backoff_s
        except (RedisError, OSError) as exc:
            log.warning("retention: Redis failed (%s); retrying in %g s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff_s)
            continue
        except Exception:
            log.exception("retention run failed; next try in %.0f s", interval_s)
        await asyncio.sleep(interval_s)


async def _take_lease(redis: Redis, token: str, ttl_s: int) -> bool:
    if await redis.set(keys.RETENTION_LEASE, token, nx=True, ex=ttl_s):
        return True
    return _s(await redis.get(keys.RETENTION_LEASE)) == token  # ours, from a run that failed midway


# --- helpers --------------------------------------------------------------------------------


def _s(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _float(value: str | None) -> float:
    try:
        return float(value or 0)
    except ValueError:
        return 0.0


def _json_or_text(value: Any) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except (ValueError, TypeError):
        return _s(value)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- command line ---------------------------------------------------------------------------


def _write_private(path: Path, text: str) -> None:
    """Created (or truncated) readable by the owner only: it is a customer's data."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            fd = -1
            handle.write(text)
    finally:
        if fd != -1:
            os.close(fd)


def _confirm(question: str) -> bool:
    print(question + " Type 'yes' to go on: ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() == "yes"


def _summary(counts: dict[str, int]) -> str:
    return "\n".join(f"  {kind:<14} {counts[kind]}" for kind in KINDS)


def _not_found(conversation_id: str) -> str:
    return (
        f"nothing stored for conversation {conversation_id!r}; ids are exact and namespaced "
        "by channel (webchat:…, rest:…, whatsapp:<number>, messenger:<psid>)"
    )


async def _export(redis: Redis, args: argparse.Namespace) -> int:
    document = await export_conversation(redis, args.conversation)
    if not document["found"]:
        print(_not_found(args.conversation), file=sys.stderr)
        return 1
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if args.out:
        _write_private(Path(args.out), text)
        print(f"exported conversation {args.conversation!r} to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


async def _delete(redis: Redis, args: argparse.Namespace) -> int:
    found = (await locate(redis, [args.conversation]))[args.conversation]
    if found.empty:
        print(_not_found(args.conversation), file=sys.stderr)
        return 1
    if not args.yes:
        state = _s(await redis.hget(keys.chat(args.conversation), "state"))
        note = f" It is {state} in the handoff queue right now." if state in (WAITING, ASSIGNED) else ""
        print(f"Stored for {args.conversation!r}:\n{_summary(found.counts())}", file=sys.stderr)
        if not _confirm(f"Delete all of it?{note}"):
            print("nothing deleted", file=sys.stderr)
            return 1
    done = await delete_conversation(redis, args.conversation)
    if done.skipped:
        print(f"conversation {args.conversation!r} is busy; nothing deleted, try again", file=sys.stderr)
        return 1
    print(f"deleted conversation {args.conversation!r}:\n{_summary(done.counts)}")
    return 0


async def _purge(redis: Redis, args: argparse.Namespace) -> int:
    from bot.settings import load_settings

    days = args.days if args.days is not None else load_settings().retention_days
    if not days or days <= 0:
        print("error: give --days N (N > 0) or set RETENTION_DAYS", file=sys.stderr)
        return 1
    idle = [cid async for cid in idle_conversations(redis, days)]
    if not idle:
        print(f"no conversation idle for more than {days:g} days")
        return 0
    if not args.yes and not _confirm(f"Delete {len(idle)} conversation(s) idle for more than {days:g} days?"):
        print("nothing deleted", file=sys.stderr)
        return 1
    done = await purge(redis, idle, days)
    print(
        f"deleted {len(done.conversations)} conversation(s) idle for more than {days:g} days:\n{_summary(done.counts)}"
    )
    return 0


async def _main(args: argparse.Namespace) -> int:
    from bot.settings import load_settings

    address = load_settings().redis
    redis = address.client(timeout=30)
    try:
        try:
            await redis.ping()
        except (RedisError, OSError) as exc:
            print(
                f"error: cannot reach Redis at {address.host}:{address.port} ({exc}); "
                "start `make run` first or set REDIS_URL",
                file=sys.stderr,
            )
            return 2
        command = {"export": _export, "delete": _delete, "purge": _purge}[args.command]
        return await command(redis, args)
    except RedisError as exc:
        print(f"error: Redis failed: {exc}", file=sys.stderr)
        return 2
    finally:
        await redis.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m handoff.privacy",
        description="Export or delete what Redis holds about a conversation; purge idle ones.",
        epilog="Exit status: 0 done, 1 nothing found or not confirmed, 2 Redis unreachable.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="print one JSON document with everything stored")
    export.add_argument("conversation", help="the conversation id, exactly (e.g. whatsapp:4915123456789)")
    export.add_argument("--out", help="write to this file (created readable by you only) instead of stdout")
    delete = commands.add_parser("delete", help="delete everything stored about a conversation")
    delete.add_argument("conversation", help="the conversation id, exactly")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge_parser = commands.add_parser("purge", help="delete conversations idle for more than N days")
    purge_parser.add_argument("--days", type=float, help="default: RETENTION_DAYS")
    purge_parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
