"""The REST channel for integrations: ``POST /webhooks/rest/webhook``, with a token.

Rasa's own REST channel needs no token, lets a caller name any conversation (a WhatsApp
number as ``sender`` made the agent's next reply go nowhere), has no size limit (one
100 KB message grew Rasa to 15 GB) and answers ``200 []`` when Redis is down and the
message was never stored. This one:

* answers only ``Authorization: Bearer $REST_TOKEN`` (403 otherwise; with no token set the
  channel is off);
* keeps its conversations to itself: ``sender`` becomes ``rest:{sender}``;
* reads at most :data:`MAX_BODY` bytes, checks the text and rate limits
  (:mod:`bot.channels.guard`) before NLU: 400, 413 or 429 with a JSON ``error``;
* answers 503 "try again" when the message could not be stored, never a silent success;
* takes an optional ``message_id``: a retry with the same id is answered once, not twice.

Body: ``{"sender": "crm-4711", "message": "How do I pay?", "message_id": "optional"}``;
the answer is Rasa's usual list of bot messages.
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from redis.exceptions import RedisError
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.guard import (
    TRY_AGAIN,
    Busy,
    ChannelGuard,
    MessageLedger,
    clean_text,
    client_address,
    client_metadata,
    conversation_id,
    current_agent,
    guard_settings_from,
    store_health,
    stored_message_ids,
    strict_store_listener,
)
from bot.channels.meta import WebhookError, parse_json, read_body, redis_for_channels

log = logging.getLogger(__name__)

CHANNEL = "rest"
MAX_BODY = 64 * 1024
SENDER = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")


def _error(status: int, message: str, **headers: str) -> HTTPResponse:
    return response.json({"error": message}, status=status, headers=headers or None)


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


class RestInput(InputChannel):
    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        return cls()

    def __init__(self) -> None:
        from bot.settings import load_settings

        settings = load_settings()
        self.token = settings.rest_token or ""
        redis = redis_for_channels()
        self.guard = ChannelGuard(redis, CHANNEL, guard_settings_from(settings))
        self.ledger = MessageLedger(redis, CHANNEL)
        if not self.token:
            log.warning("REST_TOKEN is not set: the REST channel refuses every request (403)")

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        blueprint = Blueprint("rest_webhook", __name__)
        strict_store_listener(blueprint)

        async def health(request: Request) -> HTTPResponse:
            ok, reason = await store_health(self.guard.senders.redis)
            return response.json({"status": "ok" if ok else "down", "reason": reason}, status=200 if ok else 503)

        async def receive(request: Request) -> HTTPResponse:
            given = bearer_token(request)
            if not self.token or not hmac.compare_digest(given.encode(), self.token.encode()):
                return _error(403, "a valid 'Authorization: Bearer <REST_TOKEN>' header is required")
            try:
                body = parse_json(await read_body(request, MAX_BODY))
            except WebhookError as exc:
                return exc.response()
            if not isinstance(body, dict):
                return _error(400, "the body must be a JSON object")
            sender = body.get("sender")
            if not isinstance(sender, str) or not SENDER.match(sender):
                return _error(400, "'sender' is required: 1-64 letters, digits or . _ @ + -")
            message_id = body.get("message_id")
            if message_id is not None and (not isinstance(message_id, str) or not 0 < len(message_id) <= 64):
                return _error(400, "'message_id', when given, is a string of 1-64 characters")
            message_id = clean_text(message_id) or None if message_id else None
            conversation = conversation_id(CHANNEL, sender)
            try:
                address = client_address(request)
                verdict = await self.guard.admit(conversation, address, body.get("message"))
            except RedisError:
                log.exception("rest: Redis unavailable")
                return _error(503, TRY_AGAIN["en"], **{"Retry-After": "5"})
            if not verdict.ok:
                if verdict.reason == "too_long":
                    return _error(413, verdict.reply)
                if verdict.reason == "rate_limited":
                    await self.guard.hold_refusal(verdict)
                    return _error(429, verdict.reply, **{"Retry-After": verdict.retry_after_header})
                return _error(400, "'message' must be a string with some text")
            try:
                async with self.guard.slots.turn(address):
                    return await self.handle(conversation, verdict.text, message_id, body, on_new_message)
            except Busy:
                return _error(429, "too many messages from your address at once", **{"Retry-After": "1"})

        blueprint.add_route(health, "/", methods=["GET"])
        blueprint.add_route(receive, "/webhook", methods=["POST"], stream=True)
        return blueprint

    async def handle(
        self,
        conversation: str,
        text: str,
        message_id: str | None,
        body: dict[str, Any],
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> HTTPResponse:
        collector = CollectingOutputChannel()
        metadata = client_metadata(body.get("metadata"))
        message = UserMessage(
            text,
            collector,
            conversation,
            input_channel=CHANNEL,
            message_id=message_id or uuid.uuid4().hex,
            metadata=metadata,
        )
        try:
            if message_id:
                state = await self.ledger.begin(conversation, message_id)
                if state == MessageLedger.DONE:
                    return response.json([], headers={"X-Duplicate": "1"})
                if state == MessageLedger.IN_FLIGHT:
                    return _error(409, "this message_id is still being handled", **{"Retry-After": "2"})
                if state == MessageLedger.STALE and message_id in await stored_message_ids(
                    current_agent().tracker_store, conversation
                ):
                    await self.ledger.done(conversation, message_id)
                    return response.json([], headers={"X-Duplicate": "1"})
                await self.ledger.holding(conversation, message_id, on_new_message(message))
                await self.ledger.done(conversation, message_id)
            else:
                await on_new_message(message)
        except Exception:
            log.exception("rest: message for %s not stored; the client is asked to retry", conversation)
            if message_id:
                await self.ledger.forget(conversation, message_id)
            return _error(503, TRY_AGAIN["en"], **{"Retry-After": "5"})
        return response.json(collector.messages)
