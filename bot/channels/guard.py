"""What every channel checks before a customer's message reaches NLU, in one place.

* **Whose conversation.** A conversation id is ``{channel}:{the channel's own id}``
  (``webchat:3f2a...``, ``whatsapp:4915...``), so no channel can name another channel's
  conversation; output channels strip the prefix to address the customer.
* **Clean, bounded text.** Control characters go, a lone surrogate (which would make the
  tracker's JSON unsavable) becomes U+FFFD, and a message over ``MAX_MESSAGE_CHARS`` never
  reaches NLU: the customer is asked, politely, to send it in parts. DIET's attention is
  quadratic in tokens; one 100 KB message once grew Rasa to 15 GB.
* **Rate limits** per conversation and per client address (:mod:`bot.ratelimit`).
* **Nothing acknowledged and then lost.** :class:`MessageLedger` marks a client's message
  id "in flight" under a short lease while it is handled and "done" only after Rasa stored
  it; a retry after a crash (lease run out) first looks in the tracker, so the message is
  neither lost nor stored twice.
* **An unreachable store is an error, not a silent success.** Rasa wraps every tracker
  store in ``FailSafeTrackerStore``, which on a Redis error *retrieves nothing* (a fresh
  conversation, a paused one woken up) and *saves into memory*: the customer gets
  ``200 []`` and the message is gone. :func:`refuse_store_fallback` makes those errors
  propagate, so the channel can say "try again" and the client keeps the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.language import guess_language
from bot.ratelimit import Decision, Limit, RateLimiter

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_CHARS = 2000
DEFAULT_SENDER_LIMIT = Limit(burst=15, per_minute=30)  # per conversation
DEFAULT_TURNS_PER_ADDRESS = 1  # turns in flight at once per client address (AddressSlots)
DEFAULT_ADDRESS_LIMIT = Limit(burst=120, per_minute=600)  # per client address (an office NAT is many people)

# C0/C1 controls except tab and newline; zero-width and bidi controls are left alone
# (they are part of real text in several scripts).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")

TOO_LONG = {
    "en": "That message is too long for me ({length} characters). Please send it in parts of at most {limit}.",
    "ru": "Это сообщение слишком длинное ({length} символов). Пожалуйста, отправьте его частями до {limit} символов.",
    "ka": "ეს შეტყობინება ძალიან გრძელია ({length} სიმბოლო). გამომიგზავნეთ ნაწილებად, მაქსიმუმ {limit} სიმბოლო.",
    "sr": "Ova poruka je predugačka za mene (broj znakova: {length}). Molim vas da je pošaljete u delovima od "
    "najviše {limit} znakova.",
    "lv": "Šī ziņa man ir pārāk gara (rakstzīmju skaits: {length}). Lūdzu, sūtiet to pa daļām, katrā ne vairāk "
    "kā {limit} rakstzīmes.",
    "tl": "Masyado pong mahaba ang mensaheng ito ({length} na character). Pakipadala po ito nang hati-hati, "
    "hanggang {limit} na character bawat bahagi.",
}
SLOW_DOWN = {
    "en": "You are sending messages faster than I can read them. Please wait {seconds} s and try again.",
    "ru": "Вы отправляете сообщения слишком быстро. Подождите {seconds} с и попробуйте снова.",
    "ka": "შეტყობინებებს ძალიან სწრაფად აგზავნით. დაელოდეთ {seconds} წმ და სცადეთ თავიდან.",
    "sr": "Šaljete poruke brže nego što stižem da ih pročitam. Sačekajte {seconds} s i pokušajte ponovo.",
    "lv": "Jūs sūtāt ziņas ātrāk, nekā es spēju tās izlasīt. Lūdzu, uzgaidiet {seconds} s un mēģiniet vēlreiz.",
    "tl": "Masyado pong mabilis ang pagpapadala ninyo ng mga mensahe. Maghintay po muna ng {seconds} segundo at "
    "subukang muli.",
}
TRY_AGAIN = {
    "en": "Sorry, I cannot take messages right now. Please try again in a moment.",
    "ru": "Извините, сейчас я не могу принять сообщение. Попробуйте ещё раз через минуту.",
    "ka": "ბოდიში, ახლა შეტყობინებას ვერ ვიღებ. სცადეთ ცოტა ხანში.",
    "sr": "Izvinite, trenutno ne mogu da primam poruke. Pokušajte ponovo za koji trenutak.",
    "lv": "Atvainojiet, pašlaik nevaru pieņemt ziņas. Lūdzu, mēģiniet vēlreiz pēc brīža.",
    "tl": "Paumanhin po, hindi ako makatanggap ng mga mensahe sa ngayon. Pakisubukan po ulit mamaya-maya.",
}
EMPTY = "a message needs some text"


def conversation_id(channel: str, local_id: str) -> str:
    """The tracker's id for ``local_id`` on ``channel``; already prefixed ids stay as they are."""
    prefix = f"{channel}:"
    return local_id if local_id.startswith(prefix) else prefix + local_id


def local_id(channel: str, conversation: str) -> str:
    """The channel's own id (WhatsApp number, Messenger PSID) from a conversation id."""
    return conversation.removeprefix(f"{channel}:")


def script_language(text: str) -> str:
    """A guess good enough to say "too long" or "slow down" in the customer's language: one of
    the languages the guard's replies are written in, English when unsure."""
    language = guess_language(text[:200])
    return language if language in TOO_LONG and language in SLOW_DOWN and language in TRY_AGAIN else "en"


def clean_text(text: str) -> str:
    """Text safe to store and analyse: NFC, no control characters, no lone surrogates."""
    text = _SURROGATE.sub("\ufffd", text)
    text = unicodedata.normalize("NFC", text)
    return _CONTROL.sub(" ", text).strip()


# What a client may say about its own message; everything else a client sends is dropped,
# so no client can give itself a field the bot trusts (an "agent" name, a VIP flag).
CLIENT_METADATA = {"customer_name": 100, "button_title": 200, "client_id": 64}


def client_address(request: Any) -> str:
    """The customer's address for the per-address limits: the TCP peer, or, behind load
    balancers (``PROXIES_COUNT``, which Sanic reads as ``SANIC_PROXIES_COUNT``), the address
    the nearest of them saw. Whatever the client itself put in X-Forwarded-For is not used."""
    return str(getattr(request, "remote_addr", "") or getattr(request, "ip", "") or "")


def client_metadata(raw: Any) -> dict[str, str]:
    """The known, cleaned, bounded fields of a client's message metadata."""
    if not isinstance(raw, dict):
        return {}
    kept = {}
    for key, limit in CLIENT_METADATA.items():
        value = raw.get(key)
        if isinstance(value, str) and (value := clean_text(value)[:limit]):
            kept[key] = value
    return kept


# A file a customer sent, as the channel stored it (bot/channels/media.py). Never taken from
# a client: only the WhatsApp and Messenger channels add it, after storing the file, so no
# widget or REST caller can point an agent at another conversation's file.
_ATTACHMENT_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
ATTACHMENT_TEXT = {"kind": 16, "mime": 100, "name": 100}
MAX_ATTACHMENT_SIZE = 2**31


def attachment_metadata(raw: Any) -> dict[str, Any] | None:
    """The ``attachment`` of a user message, cleaned and bounded: ``id``, ``kind``, ``mime``,
    ``name`` (strings) and ``size`` (bytes); ``None`` unless the id and size are sound."""
    if not isinstance(raw, dict):
        return None
    media_id, size = raw.get("id"), raw.get("size")
    if not isinstance(media_id, str) or not _ATTACHMENT_ID.fullmatch(media_id):
        return None
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < MAX_ATTACHMENT_SIZE:
        return None
    kept: dict[str, Any] = {"id": media_id}
    for key, limit in ATTACHMENT_TEXT.items():
        value = raw.get(key)
        kept[key] = clean_text(value)[:limit] if isinstance(value, str) else ""
    kept["size"] = size
    return kept


@dataclass(frozen=True)
class Verdict:
    """What a channel does with a message: pass ``text`` on, or answer ``reply``."""

    ok: bool
    text: str = ""
    reason: str = ""  # empty | too_long | rate_limited
    reply: str = ""
    retry_after: float = 0.0

    @property
    def retry_after_header(self) -> str:
        return Decision(False, self.retry_after).retry_after_header


@dataclass(frozen=True)
class GuardSettings:
    max_chars: int = DEFAULT_MAX_MESSAGE_CHARS
    per_sender: Limit = DEFAULT_SENDER_LIMIT
    per_address: Limit = DEFAULT_ADDRESS_LIMIT
    turns_per_address: int = DEFAULT_TURNS_PER_ADDRESS


def check_text(raw: Any, max_chars: int = DEFAULT_MAX_MESSAGE_CHARS) -> Verdict:
    """Cleaning and the length cap; no Redis needed."""
    if not isinstance(raw, str):
        return Verdict(False, reason="empty", reply=EMPTY)
    # Far over the cap is too long whatever cleaning would remove: don't spend time on it.
    text = clean_text(raw if len(raw) <= max_chars * 4 else raw[: max_chars * 4 + 1])
    if not text:
        return Verdict(False, reason="empty", reply=EMPTY)
    if len(text) > max_chars:
        reply = TOO_LONG[script_language(text)].format(length=len(raw), limit=max_chars)
        return Verdict(False, reason="too_long", reply=reply)
    return Verdict(True, text=text)


class ChannelGuard:
    """One per channel; :meth:`admit` is the only door from a channel to NLU."""

    def __init__(self, redis: Redis, channel: str, settings: GuardSettings | None = None) -> None:
        self.channel = channel
        self.settings = settings or GuardSettings()
        self.slots = AddressSlots(self.settings.turns_per_address)
        self._held = 0
        self.senders = RateLimiter(redis, f"{channel}:sender", self.settings.per_sender)
        self.addresses = RateLimiter(redis, f"{channel}:address", self.settings.per_address)

    def check_text(self, raw: Any) -> Verdict:
        return check_text(raw, self.settings.max_chars)

    # Refusals held back at once, per process: each is a sleeping coroutine (a few KB),
    # so the hold is dropped rather than let a huge flood of connections grow memory.
    MAX_HELD = 1000
    HOLD_S = 1.0

    async def hold_refusal(self, verdict: Verdict) -> None:
        """Answer a rate-limited request only after a pause (a tarpit).

        Refusing costs little, but not nothing: one address at 2,000 refused requests a
        second still took most of Rasa's event loop and tripled another customer's p99.
        Held for a second, each of the flooder's connections makes one request a second;
        an honest client over its limit waits about as long as ``Retry-After`` says anyway.
        """
        if verdict.reason != "rate_limited" or self._held >= self.MAX_HELD:
            return
        self._held += 1
        try:
            await asyncio.sleep(min(self.HOLD_S, max(verdict.retry_after, 0.1)))
        finally:
            self._held -= 1

    async def admit(self, conversation: str, address: str | None, raw: Any) -> Verdict:
        """Check text, then the rate limits; raises ``RedisError`` if Redis is unreachable."""
        verdict = self.check_text(raw)
        if not verdict.ok:
            return verdict
        # The address first: a flood from one address is then refused from memory
        # (RateLimiter remembers refusals) without spending a sender's allowance.
        checks = [(self.addresses, address)] if address else []
        checks.append((self.senders, conversation))
        for limiter, key in checks:
            decision = await limiter.hit(key)
            if not decision.allowed:
                seconds = max(1, round(decision.retry_after + 0.5))
                language = script_language(verdict.text)
                return Verdict(
                    False,
                    reason="rate_limited",
                    reply=SLOW_DOWN[language].format(seconds=seconds),
                    retry_after=decision.retry_after,
                )
        return verdict


def guard_settings_from(settings: Any) -> GuardSettings:
    return GuardSettings(
        max_chars=settings.max_message_chars,
        per_sender=settings.rate_limit_sender,
        per_address=settings.rate_limit_address,
        turns_per_address=settings.turns_per_address,
    )


# --- nothing acknowledged and then lost ------------------------------------------------

# KEYS[1] the marker; ARGV[1] lease in ms; ARGV[2] how long "done" is remembered, in s.
# Returns new | stale (an earlier attempt's lease ran out: it may have been stored) |
# in-flight | done.
_BEGIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local value = redis.call('GET', KEYS[1])
if value == 'done' then return 'done' end
local result = 'new'
if value then
  local deadline = tonumber(string.sub(value, 11))
  if deadline and deadline > now then return 'in-flight' end
  result = 'stale'
end
redis.call('SET', KEYS[1], 'in-flight:' .. (now + tonumber(ARGV[1])), 'EX', tonumber(ARGV[2]))
return result
"""

# Extend the lease of a message still being handled (only while it is in flight).
_RENEW = """
local value = redis.call('GET', KEYS[1])
if not value or string.sub(value, 1, 10) ~= 'in-flight:' then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], 'in-flight:' .. (now + tonumber(ARGV[1])), 'KEEPTTL')
return 1
"""

T = TypeVar("T")


class MessageLedger:
    """Each (conversation, client message id) handled once, counted only once stored.

    ``lease`` is how long a crashed attempt blocks a retry; a live attempt renews it.
    """

    NEW, STALE, IN_FLIGHT, DONE = "new", "stale", "in-flight", "done"

    def __init__(self, redis: Redis, channel: str, lease_s: float = 10.0, remember_s: int = 24 * 3600) -> None:
        self.redis = redis
        self.channel = channel
        self.lease_ms = int(lease_s * 1000)
        self.remember_s = remember_s
        self._begin: Any = redis.register_script(_BEGIN)
        self._renew: Any = redis.register_script(_RENEW)

    def key(self, conversation: str, message_id: str) -> str:
        return f"channel:seen:{conversation}:{message_id[:200]}"

    async def begin(self, conversation: str, message_id: str) -> str:
        state = await self._begin(keys=[self.key(conversation, message_id)], args=[self.lease_ms, self.remember_s])
        return state.decode() if isinstance(state, bytes) else str(state)

    async def done(self, conversation: str, message_id: str) -> None:
        await self.redis.set(self.key(conversation, message_id), self.DONE, ex=self.remember_s)

    async def forget(self, conversation: str, message_id: str) -> None:
        with contextlib.suppress(RedisError):
            await self.redis.delete(self.key(conversation, message_id))

    async def holding(self, conversation: str, message_id: str, work: Awaitable[T]) -> T:
        """Run ``work`` while renewing the lease, so a slow turn is not taken for a crash."""
        key = self.key(conversation, message_id)

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.lease_ms / 3000)
                with contextlib.suppress(RedisError):
                    await self._renew(keys=[key], args=[self.lease_ms])

        renewer = asyncio.ensure_future(renew())
        try:
            return await work
        finally:
            renewer.cancel()


async def stored_message_ids(tracker_store: Any, conversation: str) -> set[str]:
    """The client message ids already in the conversation's tracker (raises if unreachable)."""
    tracker = await tracker_store.retrieve(conversation)
    if tracker is None:
        return set()
    return {str(e.message_id) for e in tracker.events if getattr(e, "message_id", None)}


# --- the tracker store must fail loudly -----------------------------------------------


def _refuse(error: Exception) -> None:
    raise error


def refuse_store_fallback(agent: Any) -> None:
    """Make the agent's ``FailSafeTrackerStore`` raise instead of falling back to memory."""
    store = getattr(agent, "tracker_store", None)
    if store is not None and hasattr(store, "_on_tracker_store_error"):
        store._on_tracker_store_error = _refuse


def strict_store_listener(blueprint: Any) -> None:
    """Register :func:`refuse_store_fallback` once the server (and its agent) is up."""

    async def strict(app: Any, _loop: Any = None) -> None:
        refuse_store_fallback(getattr(app.ctx, "agent", None))

    blueprint.listener("after_server_start")(strict)


def current_agent() -> Any:
    """The running Rasa agent, with its store made strict (the model may have been swapped)."""
    from sanic import Sanic

    agent = Sanic.get_app().ctx.agent
    refuse_store_fallback(agent)
    return agent


OnMessage = Callable[[Any], Awaitable[Any]]


async def store_health(redis: Redis) -> tuple[bool, str]:
    """Whether this process can reach Redis, where every message is stored; a channel's
    health endpoint answers 503 with the reason when it cannot (no "ok" while messages
    would be refused)."""
    try:
        await asyncio.wait_for(redis.ping(), 2)
    except (RedisError, OSError, asyncio.TimeoutError) as exc:
        return False, f"redis unreachable: {exc.__class__.__name__}"
    return True, "ok"


class Busy(Exception):
    """Too many turns from one client address are running or waiting: come back shortly."""


class AddressSlots:
    """At most ``per_address`` turns from one client address run at once; the next few wait
    their turn (in order), more are refused with :class:`Busy`.

    A rate limit alone does not protect other customers: Rasa serves one process's turns on
    one event loop, so every turn in flight takes an equal share of it. Two hundred senders
    from one address, each under their own limit, once made another customer's p99 17x
    slower; one turn at a time per address keeps that address to its share. Per process:
    replicas each grant their own slots.
    """

    def __init__(self, per_address: int = 1, max_waiting: int = 20) -> None:
        self.per_address = per_address
        self.max_waiting = max_waiting
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def turn(self, address: str | None) -> AsyncIterator[None]:
        if not address:
            yield
            return
        if self._users.get(address, 0) >= self.per_address + self.max_waiting:
            raise Busy(address)
        slot = self._slots.setdefault(address, asyncio.Semaphore(self.per_address))
        self._users[address] = self._users.get(address, 0) + 1
        try:
            async with slot:
                yield
        finally:
            self._users[address] -= 1
            if not self._users[address]:
                del self._users[address], self._slots[address]


class InOrder:
    """Runs one key's work in arrival order, with at most ``max_waiting`` queued.

    python-socketio handles each event in a task of its own, so two messages sent back to
    back could overtake each other at the first ``await``; the widget waits for each ack,
    but another client need not. Beyond ``max_waiting`` the caller is told to come back
    later instead of queueing without bound.
    """

    def __init__(self, max_waiting: int = 20) -> None:
        self.max_waiting = max_waiting
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    def busy(self, key: str) -> bool:
        return self._users.get(key, 0) >= self.max_waiting

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]
