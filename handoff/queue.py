"""The queue of conversations waiting for a person, and who has which chat.

Redis holds it all so that any number of handoff-service replicas (and the action server,
which enqueues) share one truth. Changes that touch several keys run as one Lua script:
two agents clicking "Take" at the same moment can never both get the chat, and a chat is
never both waiting and assigned.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from redis.asyncio import Redis

from handoff import keys

WAITING, ASSIGNED, BOT, CLOSED = "waiting", "assigned", "bot", "closed"

# Waiting raises priority by this much per minute, so a calm customer is not overtaken
# forever by angrier ones who arrive later.
AGING_PER_MINUTE = 0.05
# Above any frustration-based priority (at most 1.3): VIP customers are served first.
VIP_BONUS = 1.5

_ENQUEUE = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'waiting' or state == 'assigned' then
  return state
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'waiting', 'card', ARGV[2], 'created_at', ARGV[3], 'priority', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 'queued'
"""

# Returns {ok, state, agent}. A removed agent (no longer in KEYS[5]) takes nothing.
_CLAIM = """
if redis.call('SISMEMBER', KEYS[5], ARGV[2]) == 0 then
  return {0, 'no agent', ''}
end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'waiting' then
  return {0, state or 'missing', redis.call('HGET', KEYS[1], 'agent') or ''}
end
local capacity = tonumber(redis.call('HGET', KEYS[4], 'capacity') or '3')
if redis.call('SCARD', KEYS[3]) >= capacity then
  return {0, 'full', ''}
end
redis.call('HSET', KEYS[1], 'state', 'assigned', 'agent', ARGV[2], 'assigned_at', ARGV[3])
redis.call('HDEL', KEYS[1], 'offered_to', 'offered_at', 'offered', 'first')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return {1, 'assigned', ARGV[2]}
"""

_RELEASE = """
local agent = redis.call('HGET', KEYS[1], 'agent')
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'closed_at', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
if agent then
  redis.call('SREM', 'handoff:agent:' .. agent .. ':chats', ARGV[1])
  redis.call('HDEL', 'handoff:unread:' .. agent, ARGV[1])
end
return 1
"""


# KEYS[1] the agent's chat set, KEYS[2] the queue; ARGV[1] the agent, ARGV[2] now.
# Each chat still assigned to the agent waits again, first in line, for anyone to take;
# what belonged to the assignment (greeting and ending notes) goes with it.
_RETURN_ALL = """
local ids = redis.call('SMEMBERS', KEYS[1])
local returned = 0
for _, id in ipairs(ids) do
  local chat = 'handoff:chat:' .. id
  if redis.call('HGET', chat, 'state') == 'assigned' and redis.call('HGET', chat, 'agent') == ARGV[1] then
    redis.call('HSET', chat, 'state', 'waiting', 'first', ARGV[2])
    redis.call('HDEL', chat, 'agent', 'assigned_at', 'greeted', 'greeting_sent', 'ending', 'position_told',
               'position_told_at', 'offered_to', 'offered_at', 'offered')
    redis.call('ZADD', KEYS[2], redis.call('HGET', chat, 'created_at') or ARGV[2], id)
    returned = returned + 1
  end
end
redis.call('DEL', KEYS[1])
return returned
"""


# KEYS[1] the chat; ARGV[1] agent, ARGV[2] now, ARGV[3] the offered_at the caller read ("" for
# none). Only a waiting chat whose offer nobody changed since is offered: two replicas'
# routers never offer one chat to two agents.
_OFFER = """
if redis.call('HGET', KEYS[1], 'state') ~= 'waiting' then return 0 end
if (redis.call('HGET', KEYS[1], 'offered_at') or '') ~= ARGV[3] then return 0 end
local offered = redis.call('HGET', KEYS[1], 'offered') or ''
if offered ~= '' then offered = offered .. ',' end
redis.call('HSET', KEYS[1], 'offered_to', ARGV[1], 'offered_at', ARGV[2], 'offered', offered .. ARGV[1])
return 1
"""

# KEYS[1] the chat, KEYS[2] the queue, KEYS[3] the agent's chats, KEYS[4] the agent's unread;
# ARGV[1] conversation, ARGV[2] agent, ARGV[3] now, ARGV[4] team ("" keeps it), ARGV[5] the
# colleague it is offered to ("" for the team). The chat waits again, first in line.
_TRANSFER = """
if redis.call('HGET', KEYS[1], 'state') ~= 'assigned' or redis.call('HGET', KEYS[1], 'agent') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'waiting', 'first', ARGV[3])
redis.call('HDEL', KEYS[1], 'agent', 'assigned_at', 'greeted', 'greeting_sent', 'ending', 'position_told',
           'position_told_at', 'offered_to', 'offered_at', 'offered')
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'team', ARGV[4]) end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'offered_to', ARGV[5], 'offered_at', ARGV[3], 'offered', ARGV[5])
end
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[2], redis.call('HGET', KEYS[1], 'created_at') or ARGV[3], ARGV[1])
return 1
"""


# A reason's head start in the queue: a topic only people handle, anger, and customers who
# already tried what the bot had (repeated "I didn't understand", a guide's every step).
REASON_BONUS = {"sensitive_topic": 0.3, "frustrated": 0.2, "repeated_fallback": 0.1, "guide_exhausted": 0.1}


@dataclass(frozen=True)
class Card:
    """What the agent sees on top of the chat: why the bot handed off and what it tried."""

    conversation_id: str
    reason: str
    scores: list[float] = field(default_factory=list)
    channel: str = "unknown"
    customer_name: str | None = None
    language: str | None = None
    summary: list[str] = field(default_factory=list)
    kb_matches: list[dict[str, Any]] = field(default_factory=list)
    # The troubleshooting guide the customer followed: title and each step with the answer.
    guide: dict[str, Any] | None = None
    # What the conversation was about (the entry's knowledge-base file) and the team it goes to.
    topic: str | None = None
    team: str | None = None
    vip: bool = False
    created_at: float = field(default_factory=time.time)

    @property
    def priority(self) -> float:
        """Higher first: frustration, a topic only people handle, and VIP customers."""
        base = max(self.scores, default=0.0)
        bonus = REASON_BONUS.get(self.reason, 0.0)
        return round(base + bonus + (VIP_BONUS if self.vip else 0.0), 3)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "priority": self.priority}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Card:
        data = json.loads(text)
        data.pop("priority", None)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Chat:
    conversation_id: str
    state: str
    card: Card
    agent: str | None
    created_at: float
    priority: float
    team: str | None = None  # the card's, or the one it was transferred to
    offered_to: str | None = None  # the agent the router offered it to (handoff/routing.py)
    offered_at: float = 0.0
    offered: tuple[str, ...] = ()  # every agent it was offered to while waiting this time
    first: float = 0.0  # when it came back (agent away, transfer): it goes first in line
    followup: str | None = None  # offered | open | done (handoff/followups.py)
    contact: str | None = None  # the e-mail address or phone number the customer left
    position_told: int | None = None  # the place in line the customer was last told
    position_told_at: float = 0.0

    def effective_priority(self, now: float) -> float:
        return self.priority + AGING_PER_MINUTE * max(0.0, now - self.created_at) / 60

    def summary(self, position: int | None = None, unread: int = 0) -> dict[str, Any]:
        """The row the console lists; everything in it is shown as text."""
        return {
            "conversation_id": self.conversation_id,
            "reason": self.card.reason,
            "priority": self.priority,
            "waiting_since": self.created_at,
            "channel": self.card.channel,
            "customer_name": self.card.customer_name,
            "language": self.card.language,
            "state": self.state,
            "agent": self.agent,
            "position": position,
            "unread": unread,
            "team": self.team,
            "offered_to": self.offered_to,
            "returned": bool(self.first),
            "contact": self.contact if self.followup == "open" else None,
        }


@dataclass(frozen=True)
class ClaimResult:
    ok: bool  # taken now
    state: str  # "assigned" when ok; else why not: "full", "no agent", or the chat's state
    agent: str | None
    already: bool = False  # not taken now because this agent holds it already (a retry)


def estimate_wait_minutes(position: int, agents_online: int, free_slots: int, avg_handle_minutes: float) -> int | None:
    """A wait we can honestly promise: ``None`` when nobody is online to take the chat."""
    if agents_online <= 0:
        return None
    if free_slots >= position:
        return 1
    rounds = math.ceil((position - free_slots) / agents_online)
    return max(1, math.ceil(rounds * avg_handle_minutes))


def place_in_line(waiting: list[Chat], conversation_id: str) -> int | None:
    """1 for the chat taken next; ``None`` if the chat is not waiting."""
    for index, chat in enumerate(waiting, start=1):
        if chat.conversation_id == conversation_id:
            return index
    return None


class WaitingLine:
    """Places in line for a process that enqueues, with concurrent askers sharing reads.

    A place needs the whole line (the order depends on priority, VIP and time waited, not
    on one stored rank), so a read per handoff made N customers handed off at once cost N
    reads of N chats: at 800, the action server's Redis calls timed out and 217 handoffs
    failed (issue 12's benchmark). Here each asker gets the first read that *starts* after
    it asked, so its own chat, enqueued before, is in it; everyone who asks while a read is
    under way shares the next one. One process, one event loop (the action server's).
    """

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.reads = 0
        self._next: asyncio.Future[list[Chat]] | None = None
        self._reader: asyncio.Task | None = None

    async def position(self, conversation_id: str) -> int | None:
        loop = asyncio.get_running_loop()
        if self._next is None:
            self._next = loop.create_future()
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read_while_asked())
        return place_in_line(await asyncio.shield(self._next), conversation_id)

    async def _read_while_asked(self) -> None:
        while self._next is not None:
            asked, self._next = self._next, None
            self.reads += 1
            try:
                asked.set_result(await self.queue.waiting())
            except asyncio.CancelledError:
                asked.cancel()
                raise
            except Exception as exc:  # every asker sees the error (Redis away), as with its own read
                asked.set_exception(exc)


class Queue:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._enqueue = redis.register_script(_ENQUEUE)
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._return_all = redis.register_script(_RETURN_ALL)
        self._position = redis.register_script(_POSITION)
        self._offer = redis.register_script(_OFFER)
        self._transfer = redis.register_script(_TRANSFER)

    async def offer(self, conversation_id: str, agent: str, seen_offered_at: float, now: float) -> bool:
        """Offer a waiting chat to ``agent``, unless someone changed its offer since it was read."""
        seen = repr(seen_offered_at) if seen_offered_at else ""
        return bool(int(await self._offer(keys=[keys.chat(conversation_id)], args=[agent, repr(now), seen])))

    async def transfer(self, conversation_id: str, agent: str, team: str | None, to: str | None) -> bool:
        """Put ``agent``'s chat back in the queue, first in line, for ``team`` or offered to ``to``."""
        done = await self._transfer(
            keys=[keys.chat(conversation_id), keys.QUEUE, keys.agent_chats(agent), keys.unread(agent)],
            args=[conversation_id, agent, repr(time.time()), team or "", to or ""],
        )
        return bool(int(done))

    async def enqueue(self, card: Card) -> bool:
        """Queue a conversation; ``False`` if it is already waiting or with an agent."""
        result = await self._enqueue(
            keys=[keys.chat(card.conversation_id), keys.QUEUE],
            args=[card.conversation_id, card.to_json(), repr(card.created_at), repr(card.priority)],
        )
        return _text(result) == "queued"

    async def get(self, conversation_id: str) -> Chat | None:
        return _chat_from(conversation_id, await self.redis.hgetall(keys.chat(conversation_id)))

    async def get_many(self, ids: list[str]) -> list[Chat | None]:
        """Several chats in one round trip (a pipeline of HGETALLs), in the order asked."""
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for conversation_id in ids:
            pipe.hgetall(keys.chat(conversation_id))
        return [_chat_from(i, data) for i, data in zip(ids, await pipe.execute(), strict=True)]

    async def waiting(self, now: float | None = None) -> list[Chat]:
        """Waiting chats, the one to take next first."""
        now = time.time() if now is None else now
        ids = [_text(i) for i in await self.redis.zrange(keys.QUEUE, 0, -1)]
        chats = [chat for chat in await self.get_many(ids) if chat and chat.state == WAITING]
        # A chat that came back (its agent went away, or it was transferred) goes first: the
        # customer already waited once.
        return sorted(chats, key=lambda c: (not c.first, c.first, -c.effective_priority(now), c.created_at))

    async def position(self, conversation_id: str) -> int | None:
        return place_in_line(await self.waiting(), conversation_id)

    async def claim(self, conversation_id: str, agent: str) -> ClaimResult:
        """Take a waiting chat, atomically. If ``agent`` holds it already, ``ok`` is false and
        ``already`` true: a retry (after a crash or a lost answer) that the caller may treat
        as success."""
        ok, state, owner = await self._claim(
            keys=[keys.chat(conversation_id), keys.QUEUE, keys.agent_chats(agent), keys.agent(agent), keys.AGENTS],
            args=[conversation_id, agent, repr(time.time())],
        )
        state, owner = _text(state), _text(owner) or None
        taken = bool(int(ok))
        return ClaimResult(taken, state, owner, already=not taken and state == ASSIGNED and owner == agent)

    async def release(self, conversation_id: str, state: str) -> bool:
        """End the human part of a chat: back to the bot, or closed."""
        assert state in (BOT, CLOSED)
        done = await self._release(
            keys=[keys.chat(conversation_id), keys.QUEUE], args=[conversation_id, state, repr(time.time())]
        )
        return bool(int(done))

    async def return_chats_of(self, agent: str) -> int:
        """Put every chat ``agent`` holds back in the queue (the agent was removed);
        returns how many."""
        returned = await self._return_all(keys=[keys.agent_chats(agent), keys.QUEUE], args=[agent, repr(time.time())])
        return int(returned)

    async def chats_of(self, agent: str) -> list[Chat]:
        ids = sorted(_text(i) for i in await self.redis.smembers(keys.agent_chats(agent)))
        return [chat for chat in await self.get_many(ids) if chat]

    async def remember_position_told(self, conversation_id: str, position: int, now: float | None = None) -> bool:
        """Record ``position`` as told if it is ahead of every place the customer was told
        before; ``True`` if so (then tell them). A customer's place only ever moves up: when
        a more urgent chat arrives in front of them, they are not told they fell back."""
        now = time.time() if now is None else now
        return bool(int(await self._position(keys=[keys.chat(conversation_id)], args=[position, repr(now)])))


def _chat_from(conversation_id: str, data: dict) -> Chat | None:
    if not data:
        return None
    data = {_text(k): _text(v) for k, v in data.items()}
    return Chat(
        conversation_id=conversation_id,
        state=data.get("state", CLOSED),
        card=(card := Card.from_json(data["card"]) if data.get("card") else Card(conversation_id, "unknown")),
        agent=data.get("agent") or None,
        created_at=float(data.get("created_at") or 0),
        priority=float(data.get("priority") or 0),
        team=data.get("team") or card.team,
        offered_to=data.get("offered_to") or None,
        offered_at=float(data.get("offered_at") or 0),
        offered=tuple(a for a in (data.get("offered") or "").split(",") if a),
        first=float(data.get("first") or 0),
        followup=data.get("followup") or None,
        contact=data.get("contact") or None,
        position_told=int(data["position_told"]) if data.get("position_told") else None,
        position_told_at=float(data.get("position_told_at") or 0),
    )


# KEYS[1] the chat; ARGV[1] its place now. Atomic, so two replicas announcing at once tell
# the customer once.
_POSITION = """
local told = tonumber(redis.call('HGET', KEYS[1], 'position_told'))
local now = tonumber(ARGV[1])
if told ~= nil and now >= told then return 0 end
redis.call('HSET', KEYS[1], 'position_told', now, 'position_told_at', ARGV[2])
return 1
"""


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
