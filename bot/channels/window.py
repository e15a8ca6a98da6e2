"""May we still write to this customer, and how? Meta's messaging windows, in one place.

Every message to a WhatsApp or Messenger customer (a bot turn, an agent's reply, the
rating question) asks :class:`ReplyWindow` first, the way Chatwoot's message window
service is asked by every sender:

* **Within 24 hours** of the customer's last message: anything (WhatsApp free-form text,
  Messenger ``messaging_type: RESPONSE``).
* **WhatsApp after 24 hours:** only an approved template (``WHATSAPP_TEMPLATE``); Meta
  refuses free-form text with error 131047, so we never send it.
* **Messenger from 24 hours to 7 days:** only with the ``HUMAN_AGENT`` message tag; after
  7 days nothing.

The customer's last message time is kept per conversation in Redis,
``channel:last_inbound:{conversation id}`` (Unix seconds when the webhook arrived; only
ever moved forward; expires after 8 days, when no window is open any more).
A conversation with no key (older than this feature, or Redis was emptied) falls back to
the tracker's last user message.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.channels.guard import conversation_id

log = logging.getLogger(__name__)

DAY = 24 * 3600
STANDARD_S = DAY  # free-form replies (WhatsApp, Messenger RESPONSE)
HUMAN_AGENT_S = 7 * DAY  # Messenger's HUMAN_AGENT tag
KEY_TTL_S = 8 * DAY

OPEN, HUMAN_AGENT, CLOSED = "open", "human_agent", "closed"

# Moves the time forward only: Meta redelivers old webhooks, and two replicas may record
# the same customer at once.
_RECORD = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
  if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'EX', tonumber(ARGV[2])) end
  return 1
end
return 0
"""


def last_message_key(conversation: str) -> str:
    """``channel:last_message:{conversation id}``: the id of the customer's latest message
    (WhatsApp shows an agent's "typing" only as a reply to one)."""
    return f"channel:last_message:{conversation}"


def last_inbound_key(conversation: str) -> str:
    """``channel:last_inbound:{conversation id}`` (``whatsapp:4479...``, ``messenger:7...``)."""
    return f"channel:last_inbound:{conversation}"


def window_state(last_inbound: float | None, now: float) -> str:
    """``open`` within 24 h of the customer's last message, ``human_agent`` up to 7 days,
    else (or never heard from) ``closed``."""
    if last_inbound is None:
        return CLOSED
    age = now - last_inbound
    if age < STANDARD_S:
        return OPEN
    if age < HUMAN_AGENT_S:
        return HUMAN_AGENT
    return CLOSED


class ReplyWindow:
    """One channel's windows, read from and written to Redis."""

    def __init__(self, redis: Redis, channel: str) -> None:
        self.redis = redis
        self.channel = channel
        self._record: Any = redis.register_script(_RECORD)

    async def record(self, local_id: str, at: float | None = None, message_id: str = "") -> None:
        """The customer wrote (now, unless ``at`` says when); raises if Redis is unreachable.

        The time is ours, when the webhook arrives, not the stamp in Meta's payload: the two
        differ by seconds, except for a redelivery after an outage of ours (its window is
        then taken as a little longer than Meta's; Meta's refusal is logged as usual).
        """
        conversation = conversation_id(self.channel, local_id)
        stamp = f"{time.time() if at is None else at:.3f}"
        await self._record(
            keys=[last_inbound_key(conversation), last_message_key(conversation)], args=[stamp, KEY_TTL_S, message_id]
        )

    async def last_message(self, local_id: str) -> str | None:
        raw = await self.redis.get(last_message_key(conversation_id(self.channel, local_id)))
        return raw.decode() if isinstance(raw, bytes) else raw

    async def last_inbound(self, local_id: str) -> float | None:
        conversation = conversation_id(self.channel, local_id)
        raw = await self.redis.get(last_inbound_key(conversation))
        if raw is not None:
            try:
                return float(raw)
            except ValueError:
                return None
        return await tracker_last_inbound(conversation)

    async def state(self, local_id: str, now: float | None = None) -> str:
        """:data:`OPEN`, :data:`HUMAN_AGENT` or :data:`CLOSED`. With Redis unreachable the
        answer is ``open``: Meta stays the judge, and its refusal is logged as usual."""
        try:
            last = await self.last_inbound(local_id)
        except (RedisError, OSError) as exc:
            log.warning("%s: last message time of %s unreadable (%s); sending as usual", self.channel, local_id, exc)
            return OPEN
        return window_state(last, time.time() if now is None else now)


async def tracker_last_inbound(conversation: str) -> float | None:
    """The time of the tracker's last user message, for conversations from before the
    Redis key existed; ``None`` outside the Rasa process or without one."""
    try:
        from bot.channels.guard import current_agent

        tracker = await current_agent().tracker_store.retrieve(conversation)
    except Exception:  # no running Rasa (unit tests, other processes) or no store
        return None
    if tracker is None:
        return None
    for event in reversed(tracker.events):
        if getattr(event, "type_name", "") == "user":
            return float(event.timestamp)
    return None
