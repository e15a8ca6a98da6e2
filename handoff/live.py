"""The live picture: the queue each open console shows, and the place in line each waiting
customer is told.

Both cost work in proportion to the queue (with 200 chats waiting, telling every customer
their new place is 200 messages through Rasa), so neither runs inside a request or while the
stream is read: callers mark them stale (:func:`queue_changed`, :func:`positions_changed`)
and one task per replica brings them up to date, gathering the changes of ``REFRESH_S`` into
one pass with one batched read of the queue. A claim answers at once, the stream reader never
waits for the announcements, and a burst of 50 handoffs costs one refresh, not 50.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from aiohttp import web

from bot.messages import say
from handoff import keys
from handoff.queue import Chat, estimate_wait_minutes
from handoff.rasa_api import RasaError

log = logging.getLogger(__name__)

REFRESH_S = 0.1  # consoles: changes gathered this long go out as one refresh
POSITIONS_EVERY_S = 1.0  # customers: at most one pass over the queue this often
SAY_AT_ONCE = 2  # place-in-line messages in flight to Rasa at once, leaving it room for greetings and replies
NEAR_FRONT = 3  # from here on every step forward is told
STEP_SHARE = 0.8  # further back, a customer is told when their place is this share of the last one told
TELL_AGAIN_S = 120.0  # or when this long has passed since they were last told and they moved


@dataclass
class Live:
    queue_wake: asyncio.Event = field(default_factory=asyncio.Event)
    positions_wake: asyncio.Event = field(default_factory=asyncio.Event)
    stale: set[str] = field(default_factory=set)  # agents whose consoles show an old queue
    everyone: bool = False  # every console does


LIVE = web.AppKey("live", Live)


def _services(app: web.Application):
    from handoff.app import SERVICES

    return app[SERVICES]


# --- the consoles' queue ----------------------------------------------------------------------


async def queue_snapshot(app: web.Application, agent: str, waiting: list[Chat] | None = None) -> dict:
    """What ``agent``'s console lists: the waiting chats in order, and their own with unread counts."""
    services = _services(app)
    if waiting is None:
        waiting = await services.queue.waiting()
    unread = {_s(k): int(v) for k, v in (await services.redis.hgetall(keys.unread(agent))).items()}
    mine = await services.queue.chats_of(agent)
    return {
        "type": "queue",
        "waiting": [chat.summary(position) for position, chat in enumerate(waiting, start=1)],
        "mine": [chat.summary(unread=unread.get(chat.conversation_id, 0)) for chat in mine],
    }


def mark_stale(app: web.Application, agent: str | None = None) -> None:
    """``agent``'s consoles (``None``: every console) show an old queue: refresh them soon."""
    live = app[LIVE]
    if agent is None:
        live.everyone = True
    else:
        live.stale.add(agent)
    live.queue_wake.set()


async def queue_changed(app: web.Application, agent: str | None = None) -> None:
    """The queue changed (for ``agent`` alone, or for everyone): on every replica."""
    mark_stale(app, agent)
    await _services(app).hub.share({"queue": agent or "*"})


async def refresh_consoles(app: web.Application) -> None:
    live, services = app[LIVE], _services(app)
    everyone, stale = live.everyone, live.stale
    live.everyone, live.stale = False, set()
    here = services.hub.agents
    agents = here if everyone else [a for a in stale if a in here]
    if not agents:
        return
    waiting = await services.queue.waiting()  # one read for every console
    for agent in agents:
        await services.hub.deliver(agent, await queue_snapshot(app, agent, waiting))


async def consoles_loop(app: web.Application) -> None:
    live = app[LIVE]
    while True:
        await live.queue_wake.wait()
        live.queue_wake.clear()
        await asyncio.sleep(REFRESH_S)  # let a burst of changes arrive
        try:
            await refresh_consoles(app)
        except Exception as exc:  # Redis away: try again, for everyone, in a second
            log.info("console refresh failed: %r", exc)
            mark_stale(app)
            await asyncio.sleep(1.0)


# --- customers' place in line -----------------------------------------------------------------


def worth_telling(position: int, told: int | None, told_at: float, now: float) -> bool:
    """Whether a waiting customer hears their new place. Only a move forward is told; near the
    front every step, further back a real step (a fifth of the way) or after a while, so 150
    customers are not sent a message each time one chat is taken."""
    if told is None:
        return True
    if position >= told:
        return False
    return position <= NEAR_FRONT or position <= told * STEP_SHARE or now - told_at >= TELL_AGAIN_S


def positions_changed(app: web.Application) -> None:
    """Places in line may have moved: announce them soon (this replica)."""
    app[LIVE].positions_wake.set()


async def announce_positions(app: web.Application, now: float | None = None) -> int:
    """Tell each waiting customer who moved forward enough where they stand; returns how many."""
    services = _services(app)
    now = time.time() if now is None else now
    if not services.hours.is_open(datetime.fromtimestamp(now, timezone.utc)):
        return 0  # nobody will take a chat before the team is back: the customer was told when
    waiting = await services.queue.waiting(now)
    due = [
        (position, chat)
        for position, chat in enumerate(waiting, start=1)
        if worth_telling(position, chat.position_told, chat.position_told_at, now)
    ]
    if not due:
        return 0
    agents_online, free_slots = await services.agents.availability()
    gate = asyncio.Semaphore(SAY_AT_ONCE)

    async def tell(position: int, chat: Chat) -> bool:
        if not await services.queue.remember_position_told(chat.conversation_id, position, now):
            return False  # another replica told them this place, or a better one
        wait = estimate_wait_minutes(position, agents_online, free_slots, services.settings.avg_handle_minutes)
        language = chat.card.language
        text = say("position", language, position=position)
        if wait is not None:
            text += say("expected_wait", language, minutes=wait)
        async with gate:
            with contextlib.suppress(RasaError):
                await services.rasa.say(chat.conversation_id, text)
        return True

    return sum(await asyncio.gather(*(tell(position, chat) for position, chat in due)))


async def positions_loop(app: web.Application) -> None:
    live = app[LIVE]
    while True:
        await live.positions_wake.wait()
        live.positions_wake.clear()
        try:
            await announce_positions(app)
        except Exception as exc:  # Redis away: the next change tries again
            log.info("announcing places in line failed: %r", exc)
        await asyncio.sleep(POSITIONS_EVERY_S)


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
