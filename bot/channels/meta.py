"""What the WhatsApp and Messenger channels share: Meta's webhook rules and the Graph API.

Both products deliver webhooks the same way, so the guarantees live here once:

* **Only Meta gets in.** A POST is accepted only with a valid ``X-Hub-Signature-256``
  (HMAC-SHA256 of the raw body with the app secret, compared in constant time). A missing,
  malformed or wrong signature, or no app secret configured, is answered 403 before the body
  is parsed. Rasa's own Facebook channel answers 200 and checks only the legacy SHA-1
  header; we do not.
* **Bounded work per request.** Bodies over :data:`MAX_BODY` are refused with 413 while
  they stream in; malformed JSON is a 400 with a JSON error, never a 500.
* **Each message once, none lost.** Meta redelivers a webhook that was not answered 200,
  sometimes while the first delivery is still running. :class:`Deduplicator` keeps an
  in-flight marker under a lease the running turn renews, and a 24 h "done" marker
  afterwards. A message is marked done only after Rasa stored it: if the process dies
  half-way, the lease runs out within seconds and Meta's redelivery is handled (after a
  look in the tracker, in case the message was stored just before the crash); a redelivery
  that arrives while the first is still running, or from a sender over the rate limit, is
  asked to come back later (429); a message that failed is answered 503.
* **Sending never crashes a turn.** :class:`GraphApi` raises :class:`GraphApiError` with
  Meta's own error message; the output channels log it and carry on. A message Meta would
  refuse because the customer's reply window has closed (:mod:`bot.channels.window`) is
  not even sent: :class:`OutsideWindow`, logged the same way. Raising it out of the output
  channel instead would make Rasa's HTTP API answer 500 and drop the agent's reply from
  the transcript (Rasa saves the tracker only after the side effects succeeded).
* **Files only while a person is on the chat** (:mod:`bot.channels.media`): an image or a
  document sent during a handoff is rate-limited like text, then fetched, checked and kept
  for the agent; the user message says ``[image] caption`` and carries ``attachment``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from rasa.core.channels.channel import OutputChannel, UserMessage
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.guard import (
    ChannelGuard,
    MessageLedger,
    Verdict,
    attachment_metadata,
    check_text,
    clean_text,
    client_metadata,
    conversation_id,
    current_agent,
    guard_settings_from,
    local_id,
    store_health,
    stored_message_ids,
    strict_store_listener,
)
from bot.channels.media import MediaReceiver, MediaRef, attachment_text, clean_name
from bot.channels.window import OPEN, ReplyWindow

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
SIGNATURE_HEADER = "X-Hub-Signature-256"
SIGNATURE_PREFIX = "sha256="
INVALID_SIGNATURE = "invalid or missing X-Hub-Signature-256"
ONLY_TEXT = "Sorry, I can only read text messages for now. Please type your question."
MORE_OPTIONS = "More options:"
ELLIPSIS = "…"


class WebhookError(Exception):
    """A webhook request refused before anything was processed; ``status`` is the answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> HTTPResponse:
        return response.json({"error": self.message}, status=self.status)


# --- verification and signatures -------------------------------------------------------


def verify_subscription(args: Mapping[str, str], verify_token: str) -> str | None:
    """The challenge to echo when Meta's subscription check is genuine, else ``None``.

    Meta calls ``GET ...?hub.mode=subscribe&hub.verify_token=...&hub.challenge=...`` once,
    when the webhook URL is saved in the app dashboard. An unset verify token never matches.
    """
    given = args.get("hub.verify_token") or ""
    challenge = args.get("hub.challenge")
    if args.get("hub.mode") != "subscribe" or not verify_token or challenge is None:
        return None
    if not hmac.compare_digest(given.encode(), verify_token.encode()):
        return None
    return challenge


def sign(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body`` (also used by the tests)."""
    return SIGNATURE_PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def signature_is_valid(body: bytes, header: str | None, app_secret: str) -> bool:
    """Whether ``header`` is Meta's signature of ``body``; false when no secret is set."""
    if not app_secret or not header or not header.isascii() or not header.startswith(SIGNATURE_PREFIX):
        return False
    given = header[len(SIGNATURE_PREFIX) :].strip().lower()
    if len(given) != 64:
        return False
    return hmac.compare_digest(sign(body, app_secret).encode(), (SIGNATURE_PREFIX + given).encode())


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The raw body of a streaming route, refused with 413 as soon as it exceeds ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise WebhookError(413, f"request body larger than {limit} bytes")
    parts: list[bytes] = [request.body] if request.body else []  # a non-streaming route has it already
    size = len(request.body or b"")
    if not parts and request.stream is not None:
        async for chunk in request.stream:
            size += len(chunk)
            if size > limit:
                break
            parts.append(chunk)
    if size > limit:
        raise WebhookError(413, f"request body larger than {limit} bytes")
    return b"".join(parts)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise WebhookError(400, "request body is not valid JSON") from None
    except RecursionError:  # signed or not, nesting this deep is no message we could use
        raise WebhookError(400, "request body is nested too deeply") from None


async def receive_webhook(request: Request, app_secret: str, channel: str) -> Any:
    """Size limit, then signature, then JSON: the parsed payload or a :class:`WebhookError`."""
    body = await read_body(request)
    if not app_secret:
        log.warning("%s webhook refused: no app secret is configured", channel)
        raise WebhookError(403, INVALID_SIGNATURE)  # the same answer: callers learn nothing of our set-up
    if not signature_is_valid(body, request.headers.get(SIGNATURE_HEADER), app_secret):
        log.warning("%s webhook refused: missing or invalid %s", channel, SIGNATURE_HEADER)
        raise WebhookError(403, INVALID_SIGNATURE)
    return parse_json(body)


def verification_response(request: Request, verify_token: str, channel: str) -> HTTPResponse:
    challenge = verify_subscription(request.args, verify_token)
    if challenge is None:
        log.warning("%s webhook verification refused: wrong hub.verify_token or hub.mode", channel)
        return response.json({"error": "verification failed"}, status=403)
    return response.text(challenge)


# --- inbound messages ------------------------------------------------------------------


@dataclass(frozen=True)
class Inbound:
    """One customer message from a webhook. ``text`` is ``None`` for what we cannot read
    (locations, stickers, ...): the customer is told so and Rasa never sees it. A file
    (``media``) is passed on during a handoff only (:mod:`bot.channels.media`)."""

    message_id: str
    sender_id: str
    text: str | None
    kind: str
    customer_name: str | None = None
    button_title: str | None = None  # the title of the button or list row tapped, for agents
    media: MediaRef | None = None
    notify: bool = True  # False: the text-only notice went with another part of the same message

    def metadata(self, attachment: dict[str, Any] | None = None) -> dict[str, Any]:
        """The user message's metadata: the customer's name, the tapped button's title and
        a stored file's ``attachment`` (``{id, kind, mime, name, size}``), each cleaned."""
        kept: dict[str, Any] = client_metadata({"customer_name": self.customer_name, "button_title": self.button_title})
        if (cleaned := attachment_metadata(attachment)) is not None:
            kept["attachment"] = cleaned
        return kept


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def seen_key(channel: str, message_id: str) -> str:
    """``channel:seen:{channel}:{message_id}``: "in-flight" while handled, then "done"
    (written by :class:`~bot.channels.guard.MessageLedger`, whose key this is)."""
    return f"channel:seen:{channel}:{message_id[:200]}"


class Deduplicator:
    """Handles each Meta message id once, and counts it done only once Rasa stored it.

    A :class:`~bot.channels.guard.MessageLedger` under the channel's name: "in flight"
    under a lease the running turn renews, "done" afterwards. If the process dies mid-turn
    the lease runs out within seconds (not minutes), and the redelivery first looks in the
    tracker, since the message may have been stored just before the crash.
    """

    IN_FLIGHT = MessageLedger.IN_FLIGHT
    DONE = MessageLedger.DONE
    STALE = MessageLedger.STALE

    def __init__(self, redis: Redis, channel: str, lease_s: float = 10.0) -> None:
        self.redis = redis
        self.channel = channel
        self.ledger = MessageLedger(redis, channel, lease_s=lease_s)

    async def claim(self, message_id: str) -> str | None:
        """``None`` when this caller now owns a new message; ``stale`` when it owns one an
        earlier attempt may have stored; else ``in-flight`` or ``done``."""
        state = await self.ledger.begin(self.channel, message_id)
        return None if state == MessageLedger.NEW else state

    async def done(self, message_id: str) -> None:
        await self.ledger.done(self.channel, message_id)

    async def release(self, message_id: str) -> None:
        """Forget a message whose handling failed, so Meta's redelivery is handled."""
        await self.ledger.forget(self.channel, message_id)

    def holding(self, message_id: str, work: Awaitable[Any]) -> Awaitable[Any]:
        return self.ledger.holding(self.channel, message_id, work)


def redis_for_channels() -> Redis:
    """The Rasa process's Redis (``REDIS_URL``); no connection is opened until first use."""
    from bot.settings import load_settings

    return load_settings().redis.client()


class RetryLater(Exception):
    """Some message of the webhook is still being handled, its sender is over the rate
    limit, or (``failed``) handling failed: Meta should deliver the webhook again (messages
    already done are skipped then)."""

    def __init__(self, failed: bool = False) -> None:
        super().__init__("failed" if failed else "later")
        self.failed = failed


@dataclass(frozen=True)
class Intake:
    """What a Meta channel does with a message besides passing its text on.

    ``window`` records when the customer last wrote (Meta's reply windows,
    :mod:`bot.channels.window`); ``media`` receives files during a handoff
    (:mod:`bot.channels.media`); ``names`` finds a customer's name the webhook lacks
    (Messenger's profile lookup). Each is optional.
    """

    window: ReplyWindow | None = None
    media: MediaReceiver | None = None
    names: Callable[[str], Awaitable[str | None]] | None = None


_running: set[asyncio.Task] = set()


async def deliver(
    messages: Iterable[Inbound],
    *,
    channel: str,
    dedupe: Deduplicator,
    output: OutputChannel,
    on_new_message: Callable[[UserMessage], Awaitable[Any]],
    guard: ChannelGuard | None = None,
    intake: Intake | None = None,
) -> None:
    """Hand each new message to Rasa (or answer it politely), once.

    Each message runs in a shielded task: when Meta drops the connection the turn still
    completes and is marked done, instead of being cut off half-way.
    """
    retry = failed = False
    for message in messages:
        # Ids are Meta's, but a forged-yet-signed or garbled one must not poison the webhook:
        # a lone surrogate cannot even be written to Redis, so Meta would redeliver forever.
        message = dataclasses.replace(
            message, message_id=clean_text(message.message_id)[:256], sender_id=clean_text(message.sender_id)[:256]
        )
        if not message.message_id or not message.sender_id:
            continue
        task = asyncio.ensure_future(
            _deliver_one(message, channel, dedupe, output, on_new_message, guard, intake or Intake())
        )
        _running.add(task)
        task.add_done_callback(_running.discard)
        try:
            retry = not await asyncio.shield(task) or retry
        except RedisError:
            raise
        except Exception:
            log.exception(
                "%s message %s from %s failed; Meta will redeliver it", channel, message.message_id, message.sender_id
            )
            failed = True
    if failed:
        raise RetryLater(failed=True)
    if retry:
        raise RetryLater


async def _deliver_one(
    message: Inbound,
    channel: str,
    dedupe: Deduplicator,
    output: OutputChannel,
    on_new_message: Callable[[UserMessage], Awaitable[Any]],
    guard: ChannelGuard | None = None,
    intake: Intake | None = None,
) -> bool:
    """False when another delivery of the same message is still in flight, or the sender
    is over their rate limit (Meta delivers it again later: nothing is lost)."""
    intake = intake or Intake()
    conversation = conversation_id(channel, message.sender_id)
    if intake.window is not None:  # any message opens the window, even one we do not pass on
        await intake.window.record(message.sender_id, message_id=message.message_id)
    state = await dedupe.claim(message.message_id)
    if state in (Deduplicator.IN_FLIGHT, Deduplicator.DONE):
        log.info("%s message %s already %s; not handled again", channel, message.message_id, state)
        return state == Deduplicator.DONE
    if state == Deduplicator.STALE and message.message_id in await stored_message_ids(
        current_agent().tracker_store, conversation
    ):
        await dedupe.done(message.message_id)  # stored just before a crash: not again
        return True
    try:
        handoff, language = False, None
        if message.media is not None and intake.media is not None:
            handoff, language = await intake.media.handoff_language(conversation)
        if message.media is not None and handoff:
            text = attachment_text(message.media.kind, clean_name(message.media.name), message.media.caption)
        else:
            text = message.text
        if text is None:
            if message.notify:
                log.info("%s %s message from %s: the text-only notice", channel, message.kind, message.sender_id)
                await output.send_text_message(message.sender_id, ONLY_TEXT)
        else:
            # Rate limits before anything is downloaded: a flood of files costs no traffic.
            verdict = await guard.admit(conversation, None, text) if guard else check_text(text)
            if verdict.reason == "rate_limited":
                log.warning("%s sender %s over the rate limit; Meta will redeliver", channel, message.sender_id)
                await dedupe.release(message.message_id)
                return False
            if verdict.reason == "too_long":
                await output.send_text_message(message.sender_id, verdict.reply)
            elif verdict.ok:
                work = _to_rasa(message, verdict, conversation, channel, output, on_new_message, intake, language)
                await dedupe.holding(message.message_id, work)
    except BaseException:
        await dedupe.release(message.message_id)
        raise
    await dedupe.done(message.message_id)
    return True


async def _to_rasa(
    message: Inbound,
    verdict: Verdict,
    conversation: str,
    channel: str,
    output: OutputChannel,
    on_new_message: Callable[[UserMessage], Awaitable[Any]],
    intake: Intake,
    language: str | None,
) -> None:
    """Fetch a file (during a handoff) and the customer's name, then hand the message to Rasa."""
    text, attachment = verdict.text, None
    if message.media is not None and intake.media is not None:
        received = await intake.media.receive(conversation, message.media, language)
        if received.reply:
            await output.send_text_message(message.sender_id, received.reply)
        text, attachment = clean_text(received.text) or text, received.attachment
    if message.customer_name is None and intake.names is not None:
        message = dataclasses.replace(message, customer_name=await intake.names(message.sender_id))
    user_message = UserMessage(
        text,
        output,
        conversation,
        input_channel=channel,
        message_id=message.message_id,
        metadata=message.metadata(attachment),
    )
    await on_new_message(user_message)


async def handle_webhook(
    request: Request,
    *,
    channel: str,
    app_secret: str,
    parse: Callable[[Any], list[Inbound]],
    dedupe: Deduplicator,
    output: OutputChannel,
    on_new_message: Callable[[UserMessage], Awaitable[Any]],
    guard: ChannelGuard | None = None,
    intake: Intake | None = None,
) -> HTTPResponse:
    """The whole POST: checks, parsing, delivery; 200 once every message is handled."""
    try:
        payload = await receive_webhook(request, app_secret, channel)
        messages = parse(payload)
        await deliver(
            messages,
            channel=channel,
            dedupe=dedupe,
            output=output,
            on_new_message=on_new_message,
            guard=guard,
            intake=intake,
        )
    except WebhookError as exc:
        return exc.response()
    except RetryLater as later:
        if later.failed:  # our fault: an honest 5xx, and Meta delivers again
            return response.json({"error": "not handled; deliver again later"}, status=503)
        # Busy with an earlier delivery, or the sender is over the rate limit: not a failure.
        return response.json(
            {"error": "not handled yet; deliver again later"}, status=429, headers={"Retry-After": "5"}
        )
    except RedisError:
        log.exception("%s webhook: Redis unavailable; Meta will redeliver", channel)
        return response.json({"error": "temporarily unavailable; deliver again later"}, status=503)
    return response.json({"status": "ok"})


# --- outbound --------------------------------------------------------------------------


class GraphApiError(RuntimeError):
    """Meta refused a call, or could not be reached; the message says why in Meta's words."""

    def __init__(self, message: str, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    @property
    def transient(self) -> bool:
        """Whether the same call may succeed later (Meta unreachable, 5xx, throttled)."""
        return self.status is None or self.status >= 500 or self.status == 429


class OutsideWindow(GraphApiError):
    """Meta would refuse this message: the customer's reply window is closed (WhatsApp
    with no ``WHATSAPP_TEMPLATE``, Messenger after 7 days). Raised before anything is
    sent and reported like every other failed send: logged, the turn still recorded."""


def graph_error(status: int, path: str, body: Any, method: str = "POST") -> GraphApiError:
    error = as_dict(as_dict(body).get("error"))
    message = as_text(error.get("message")) or (body if isinstance(body, str) else "") or "no error message"
    code = error.get("code") if isinstance(error.get("code"), int) else None
    detail = f" (code {code})" if code is not None else ""
    return GraphApiError(f"Graph API answered {status} to {method} {path}: {message[:500]}{detail}", status, code)


class GraphApi:
    """A small client for Graph API calls, one HTTP session per process.

    The base URL and version are configuration (``GRAPH_API_URL``, ``GRAPH_API_VERSION``),
    so tests point it at a local fake. Tokens go in the call, never in log lines.
    """

    def __init__(self, base_url: str, version: str, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.version = version.strip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=5)
        self._session: aiohttp.ClientSession | None = None

    def url(self, path: str) -> str:
        return f"{self.base_url}/{self.version}/{path.lstrip('/')}"

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:  # created in the server's loop
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def post(
        self,
        path: str,
        body: dict[str, Any],
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        return await self._call("POST", path, body, headers, params)

    async def get(
        self,
        path: str,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        return await self._call("GET", path, None, headers, params, timeout)

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        limit = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 5)) if timeout else None
        try:
            async with self.session().request(
                method, self.url(path), json=body, headers=headers, params=params, timeout=limit or self.timeout
            ) as answer:
                text = await answer.text()
                try:
                    data: Any = json.loads(text) if text else {}
                except ValueError:
                    data = text
                if answer.status >= 400:
                    raise graph_error(answer.status, path, data, method)
                return as_dict(data)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise GraphApiError(f"cannot reach the Graph API at {self.base_url}: {exc!r}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def send_all(graph: GraphApi, channel: str, path: str, bodies: list[dict[str, Any]], **auth: Any) -> None:
    """Send messages in order; on the first failure log Meta's reason and send no more,
    so the customer never gets a list without the text that introduces it."""
    for body in bodies:
        try:
            await graph.post(path, body, **auth)
        except GraphApiError as exc:
            log.error("%s: message not delivered: %s", channel, exc)
            return


# --- text helpers for outbound messages ------------------------------------------------


def split_text(text: str, limit: int) -> list[str]:
    """Cut ``text`` into parts of at most ``limit`` characters, at a paragraph, line or word
    break when there is one, so no word is split unless it is longer than ``limit``."""
    parts: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = max(window.rfind("\n\n"), 0) or max(window.rfind("\n"), 0) or max(window.rfind(" "), 0)
        if cut <= 0:
            cut = limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts


def truncate(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + ELLIPSIS


def with_agent_name(text: str, agent: Any) -> str:
    """``"Alice: ..."`` for a message a person wrote, so the customer knows who is talking."""
    name = as_text(agent).strip()
    if not name or not text:
        return text
    return f"{name[:1].upper()}{name[1:]}: {text}"


@dataclass(frozen=True)
class Option:
    title: str
    payload: str


def options_from(buttons: Iterable[Any]) -> tuple[list[Option], list[str]]:
    """Rasa buttons as (options the customer can tap, link lines to add to the text).

    A payload too long for Meta is replaced by the title: tapping it then sends the title,
    which Rasa understands like typed text, rather than a cut-off payload it cannot parse.
    """
    options: list[Option] = []
    links: list[str] = []
    for button in buttons:
        button = as_dict(button)
        title = as_text(button.get("title")).strip()
        payload = as_text(button.get("payload")).strip()
        url = as_text(button.get("url")).strip()
        if url and not payload:
            links.append(f"{title}: {url}" if title else url)
        elif title or payload:
            options.append(Option(title or payload, payload or title))
    return options, links


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def close_session_on_stop(blueprint: Any, graph: GraphApi) -> None:
    async def close(app: Any, loop: Any) -> None:
        with contextlib.suppress(Exception):
            await graph.close()

    blueprint.listener("after_server_stop")(close)


async def tell_agents_undelivered(redis: Redis, conversation: str, why: str) -> None:
    """A note on the chat (``handoff/notes.py``), pushed to the consoles showing it, saying a
    message did not reach the customer and why."""
    from handoff.keys import NOTES_PUSH
    from handoff.notes import add_note

    note = await add_note(redis, conversation, "system", f"Not delivered to the customer: {why}")
    await redis.publish(NOTES_PUSH, json.dumps({"conversation_id": conversation, "note": note}))


def relay_agent_typing(blueprint: Any, channel: str, redis: Redis, output: Callable[[], OutputChannel]) -> None:
    """Follow the agents' "typing" (``keys.TYPING_AGENT``, published by the handoff service
    for a chat the agent holds) and show it to this channel's customers."""
    from bot.pubsub import follow
    from handoff.keys import TYPING_AGENT

    async def show(_channel: str, data: dict[str, Any]) -> None:
        conversation = data.get("conversation_id")
        if isinstance(conversation, str) and conversation.startswith(f"{channel}:"):
            with contextlib.suppress(GraphApiError):
                await output().typing(local_id(channel, conversation))

    async def start(app: Any, _loop: Any = None) -> None:
        app.add_task(follow(redis, (TYPING_AGENT,), show, f"{channel}: agent typing relay"))

    blueprint.listener("after_server_start")(start)


def webhook_blueprint(
    channel: str,
    verify_token: str,
    app_secret: str,
    graph: GraphApi,
    parse: Callable[[Any], list[Inbound]],
    output: Callable[[], OutputChannel],
    on_new_message: Callable[[UserMessage], Awaitable[Any]],
    redis: Redis | None = None,
    intake: Intake | None = None,
) -> Blueprint:
    """The Sanic routes every Meta channel has: health, subscription check, signed webhook.

    URLs under ``/webhooks/{channel}/``: ``GET /`` (health), ``GET /webhook`` (Meta's
    verification) and ``POST /webhook`` (streamed, so oversized bodies are refused early).
    """
    from bot.settings import load_settings

    blueprint = Blueprint(f"{channel}_webhook", __name__)
    redis = redis if redis is not None else redis_for_channels()
    dedupe = Deduplicator(redis, channel)
    guard = ChannelGuard(redis, channel, guard_settings_from(load_settings()))
    close_session_on_stop(blueprint, graph)
    strict_store_listener(blueprint)
    relay_agent_typing(blueprint, channel, redis, output)

    async def health(request: Request) -> HTTPResponse:
        ok, reason = await store_health(redis)
        return response.json({"status": "ok" if ok else "down", "reason": reason}, status=200 if ok else 503)

    async def verify(request: Request) -> HTTPResponse:
        return verification_response(request, verify_token, channel)

    async def webhook(request: Request) -> HTTPResponse:
        return await handle_webhook(
            request,
            channel=channel,
            app_secret=app_secret,
            parse=parse,
            dedupe=dedupe,
            output=output(),
            on_new_message=on_new_message,
            guard=guard,
            intake=intake,
        )

    blueprint.add_route(health, "/", methods=["GET"])
    blueprint.add_route(verify, "/webhook", methods=["GET"])
    blueprint.add_route(webhook, "/webhook", methods=["POST"], stream=True)
    return blueprint


class MetaOutput(OutputChannel):
    """What the WhatsApp and Messenger outputs share: turn one Rasa message (a bot turn or an
    agent's reply, whose name is put in front) into the channel's API bodies and send them.
    Subclasses say how a body looks (``build``, ``media``, ``native``), what Meta accepts
    outside the 24-hour window (``within_window``) and where it goes (``_post``).

    Every message asks the channel's :class:`~bot.channels.window.ReplyWindow` first; one
    that Meta would refuse is not sent (:class:`OutsideWindow`, logged like any failed send).
    """

    window: ReplyWindow | None = None  # None: not tracked, every message is sent as within the window

    def build(self, recipient_id: str, text: str, buttons: list[Any] | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def media(self, recipient_id: str, url: str) -> dict[str, Any]:
        raise NotImplementedError

    def native(self, recipient_id: str, custom: dict[str, Any]) -> dict[str, Any] | None:
        """A ``custom`` payload already in the channel's own format, or ``None`` to skip it."""
        raise NotImplementedError

    def within_window(self, recipient_id: str, bodies: list[dict[str, Any]], state: str) -> list[dict[str, Any]]:
        """The bodies to send when the customer's window is ``state`` (``open``,
        ``human_agent`` or ``closed``); raises :class:`OutsideWindow` when Meta would
        accept none of them."""
        raise NotImplementedError

    async def _post(self, bodies: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def typing_body(self, recipient_id: str) -> dict[str, Any] | None:
        """The channel's "typing" signal for an agent writing to ``recipient_id``, if it has one."""
        return None

    async def typing(self, recipient_id: str) -> None:
        """Show the customer that an agent is typing, within the window only (a signal is
        not worth a template)."""
        body = self.typing_body(recipient_id)
        if body is None:
            return
        state = OPEN if self.window is None else await self.window.state(recipient_id)
        if state == OPEN:
            await self._post([body])

    async def _send(self, recipient_id: str, bodies: list[dict[str, Any]]) -> None:
        if not bodies:
            return
        state = OPEN if self.window is None else await self.window.state(recipient_id)
        try:
            bodies = self.within_window(recipient_id, bodies, state)
        except OutsideWindow as exc:
            log.error("%s: message to %s not delivered: %s", self.name(), recipient_id, exc)
            if self.window is not None:  # the agents see it on the chat, not only in a log
                with contextlib.suppress(Exception):
                    await tell_agents_undelivered(
                        self.window.redis, conversation_id(self.name(), recipient_id), str(exc)
                    )
            return
        await self._post(bodies)

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        recipient_id = local_id(self.name(), recipient_id)
        text = with_agent_name(as_text(message.get("text")), message.get("agent"))
        buttons = as_list(message.get("buttons")) or as_list(message.get("quick_replies"))
        bodies = self.build(recipient_id, text, buttons) if text or buttons else []
        image, attachment = as_text(message.get("image")), as_text(message.get("attachment"))
        if image:
            bodies.append(self.media(recipient_id, image))
        if attachment and attachment != image:
            bodies += self.build(recipient_id, attachment)
        custom = message.get("custom")
        if isinstance(custom, dict) and custom and (native := self.native(recipient_id, custom)):
            bodies.append(native)
        await self._send(recipient_id, bodies)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        recipient_id = local_id(self.name(), recipient_id)
        await self._send(recipient_id, self.build(recipient_id, text))

    async def send_text_with_buttons(self, recipient_id: str, text: str, buttons: list[dict], **kwargs: Any) -> None:
        recipient_id = local_id(self.name(), recipient_id)
        await self._send(recipient_id, self.build(recipient_id, text, buttons))
