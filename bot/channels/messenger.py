"""Facebook Messenger channel: a Facebook page's webhooks in, Send API calls out.

The same guarantees as WhatsApp (:mod:`bot.channels.meta`): ``X-Hub-Signature-256``
checked in constant time with 403 on failure (Rasa's built-in ``facebook`` channel answers
200 and checks only SHA-1), a body size limit, 400 on malformed JSON, and each message
handled once, by its ``mid``.

* In: typed text, a tapped quick reply (its ``payload``) and a postback (its ``payload``)
  go to Rasa; echoes of our own messages, deliveries, reads and reactions are ignored.
  Images and files sent during a handoff are fetched from their attachment URL and passed
  on to the agent (:mod:`bot.channels.media`); otherwise attachments (images, stickers,
  audio, files, locations) get a polite "text only" answer.
* The customer's name is looked up once (``GET /{psid}?fields=first_name,last_name``
  with the page token), kept 30 days in ``channel:profile:messenger:{psid}``, and passed
  as ``customer_name`` like WhatsApp's profile name. A failed lookup never holds up the
  message: it goes on without a name, and the lookup is not tried again for an hour.
* Out: ``POST {graph}/{version}/me/messages?access_token=...`` with
  ``messaging_type: RESPONSE``; text over 2000 characters is split, options become quick
  replies (at most 13 a message, more are split). An agent's reply starts with their name.
  From 24 hours to 7 days after the customer's last message every message carries
  ``messaging_type: MESSAGE_TAG, tag: HUMAN_AGENT``; after 7 days nothing is sent
  (logged), since Meta would refuse it (:mod:`bot.channels.window`).

Configured in ``credentials.yml`` as ``bot.channels.messenger.MessengerInput``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sanic import Blueprint

from bot.channels.guard import clean_text, conversation_id
from bot.channels.media import (
    DEFAULT_MAX_BYTES,
    DEFAULT_TTL_S,
    DOCUMENT,
    IMAGE,
    Download,
    Fetch,
    MediaReceiver,
    MediaRef,
    download,
    media_ttl,
    name_from_url,
)
from bot.channels.meta import (
    MORE_OPTIONS,
    GraphApi,
    GraphApiError,
    Inbound,
    Intake,
    MetaOutput,
    Option,
    OutsideWindow,
    as_dict,
    as_list,
    as_text,
    chunks,
    options_from,
    redis_for_channels,
    send_all,
    split_text,
    truncate,
    webhook_blueprint,
)
from bot.channels.window import HUMAN_AGENT, OPEN, ReplyWindow

log = logging.getLogger(__name__)

CHANNEL = "messenger"
DEFAULT_GRAPH_API_URL = "https://graph.facebook.com"
DEFAULT_GRAPH_API_VERSION = "v21.0"
TEXT_LIMIT = 2000
MAX_QUICK_REPLIES = 13
QUICK_REPLY_TITLE = 20
QUICK_REPLY_PAYLOAD = 1000
CHOOSE = "Please choose an option:"
# Attachment types that are files; images and files reach an agent during a handoff.
MEDIA_TYPES = {"image": IMAGE, "file": DOCUMENT, "audio": "audio", "video": "video"}
MAX_ATTACHMENTS = 10
PROFILE_TTL_S = 30 * 24 * 3600
PROFILE_RETRY_S = 3600  # after a failed lookup, go on without a name for this long
PROFILE_TIMEOUT_S = 3.0
NAME_LIMIT = 100


# --- inbound ---------------------------------------------------------------------------


def parse_messenger(payload: Any) -> list[Inbound]:
    """The customer messages and postbacks of one webhook, oldest first."""
    payload = as_dict(payload)
    if payload.get("object") != "page":
        return []
    found: list[Inbound] = []
    for entry in as_list(payload.get("entry")):
        for event in as_list(as_dict(entry).get("messaging")):
            found += messenger_event(as_dict(event))
    return found


def messenger_event(event: dict[str, Any]) -> list[Inbound]:
    """The messages in one ``messaging`` event: none, one, or one per attached file."""
    sender = as_text(as_dict(event.get("sender")).get("id"))
    if not sender:
        return []
    if "message" in event:
        message = as_dict(event.get("message"))
        mid = as_text(message.get("mid"))
        if message.get("is_echo") or not mid:  # our own message, mirrored back to the page
            return []
        payload = as_text(as_dict(message.get("quick_reply")).get("payload"))
        if payload.strip():  # the message's text is the quick reply's title
            title = as_text(message.get("text")) or None
            return [Inbound(mid, sender, payload, "quick_reply", button_title=title)]
        text = as_text(message.get("text"))
        if text.strip():
            return [Inbound(mid, sender, text, "text")]
        attachments = as_list(message.get("attachments"))[:MAX_ATTACHMENTS]
        if message.get("sticker_id") and attachments:  # a sticker (the "like" thumb too)
            return [Inbound(mid, sender, None, "sticker", media=MediaRef("sticker", ""))]
        found = []
        for index, attachment in enumerate(attachments):
            attachment = as_dict(attachment)
            kind = as_text(attachment.get("type")) or "attachment"
            url = as_text(as_dict(attachment.get("payload")).get("url"))
            media = MediaRef(MEDIA_TYPES[kind], url, name=name_from_url(url)) if kind in MEDIA_TYPES else None
            # One message may carry several files; each is handled (and de-duplicated) on its own.
            message_id = mid if index == 0 else f"{mid}#{index}"
            found.append(Inbound(message_id, sender, None, kind, media=media, notify=index == 0))
        return found
    if "postback" in event:
        postback = as_dict(event.get("postback"))
        payload = as_text(postback.get("payload")) or as_text(postback.get("title"))
        # Older postbacks carry no mid; the sender and Meta's timestamp identify a redelivery.
        mid = as_text(postback.get("mid")) or f"postback:{sender}:{event.get('timestamp')}"
        title = as_text(postback.get("title")) or None
        if not payload.strip():
            return []
        return [Inbound(mid, sender, payload, "postback", button_title=title)]
    return []  # delivery, read, reaction, referral, optin, ...


# --- outbound --------------------------------------------------------------------------


def send_api_message(recipient: str, message: dict[str, Any]) -> dict[str, Any]:
    return {"recipient": {"id": recipient}, "messaging_type": "RESPONSE", "message": message}


def quick_reply(option: Option) -> dict[str, str]:
    payload = (
        option.payload if len(option.payload) <= QUICK_REPLY_PAYLOAD else truncate(option.title, QUICK_REPLY_PAYLOAD)
    )
    return {"content_type": "text", "title": truncate(option.title, QUICK_REPLY_TITLE), "payload": payload}


def messenger_messages(recipient: str, text: str, buttons: list[Any] | None = None) -> list[dict[str, Any]]:
    """The Send API bodies that show ``text`` and ``buttons`` within Messenger's limits.

    Messenger shows quick replies under the latest message only, so they go on the last
    part of a long text; beyond 13 options further messages carry the rest.
    """
    options, links = options_from(buttons or [])
    parts = split_text("\n".join([text.strip(), *links]), TEXT_LIMIT)
    if not options:
        return [send_api_message(recipient, {"text": part}) for part in parts]
    last = parts.pop() if parts else CHOOSE
    messages = [send_api_message(recipient, {"text": part}) for part in parts]
    for index, group in enumerate(chunks(options, MAX_QUICK_REPLIES)):
        body = {"text": last if index == 0 else MORE_OPTIONS, "quick_replies": [quick_reply(o) for o in group]}
        messages.append(send_api_message(recipient, body))
    return messages


def human_agent_tagged(body: dict[str, Any]) -> dict[str, Any]:
    """A Send API body allowed 24 hours to 7 days after the customer's last message."""
    return {**body, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}


def within_messenger_window(bodies: list[dict[str, Any]], state: str) -> list[dict[str, Any]]:
    """``RESPONSE`` within 24 hours, the ``HUMAN_AGENT`` tag up to 7 days, then nothing
    (:class:`OutsideWindow`)."""
    if state == OPEN:
        return bodies
    if state == HUMAN_AGENT:
        return [human_agent_tagged(body) for body in bodies]
    raise OutsideWindow(
        "the customer's last message is more than 7 days old, so Messenger accepts no message now, "
        "not even with the HUMAN_AGENT tag; not sent"
    )


def profile_key(psid: str) -> str:
    """``channel:profile:{conversation id}``: the Messenger customer's name ("" after a
    failed lookup, for an hour)."""
    return f"channel:profile:{conversation_id(CHANNEL, psid)}"


class MessengerProfiles:
    """The customer's name from the Graph API's user profile, cached in Redis.

    Messenger's webhooks carry no name. Called for each message that reaches Rasa: a cache
    hit costs one GET; a lookup is bounded by a short timeout, and a failure (logged once)
    is remembered for an hour, so the message goes on without a name and Meta is not asked
    again at every message.
    """

    def __init__(self, redis: Redis, graph: GraphApi, page_access_token: str) -> None:
        self.redis = redis
        self.graph = graph
        self.page_access_token = page_access_token

    async def __call__(self, psid: str) -> str | None:
        if not psid.isdigit() or not self.page_access_token:
            return None
        key = profile_key(psid)
        try:
            cached = await self.redis.get(key)
        except RedisError:
            return None
        if cached is not None:
            name = cached.decode() if isinstance(cached, bytes) else str(cached)
            return name or None
        try:
            profile = await self.graph.get(
                psid,
                params={"fields": "first_name,last_name", "access_token": self.page_access_token},
                timeout=PROFILE_TIMEOUT_S,
            )
        except GraphApiError as exc:
            log.warning("messenger: no name for %s, going on without one: %s", psid, exc)
            await self._remember(key, "", PROFILE_RETRY_S)
            return None
        parts = (clean_text(as_text(profile.get(field))) for field in ("first_name", "last_name"))
        name = " ".join(part for part in parts if part)[:NAME_LIMIT]
        await self._remember(key, name, PROFILE_TTL_S if name else PROFILE_RETRY_S)
        return name or None

    async def _remember(self, key: str, name: str, ttl_s: int) -> None:
        with contextlib.suppress(RedisError):  # else the next message looks it up again
            await self.redis.set(key, name, ex=ttl_s)


def attachment_fetcher(graph: GraphApi) -> Fetch:
    """Messenger's attachment URLs are signed CDN links: fetched as they are, no token."""

    async def fetch(ref: MediaRef, max_bytes: int) -> Download:
        return await download(graph.session(), ref.source, max_bytes)

    return fetch


def image_message(recipient: str, url: str) -> dict[str, Any]:
    return send_api_message(recipient, {"attachment": {"type": "image", "payload": {"url": url, "is_reusable": True}}})


class MessengerOutput(MetaOutput):
    """Sends Rasa's messages (bot turns and agent replies) through the Send API."""

    def __init__(self, graph: GraphApi, page_access_token: str, window: ReplyWindow | None = None) -> None:
        self.graph = graph
        self.page_access_token = page_access_token
        self.window = window

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    async def _post(self, bodies: list[dict[str, Any]]) -> None:
        await send_all(self.graph, CHANNEL, "me/messages", bodies, params={"access_token": self.page_access_token})

    def within_window(self, recipient_id: str, bodies: list[dict[str, Any]], state: str) -> list[dict[str, Any]]:
        return within_messenger_window(bodies, state)

    def typing_body(self, recipient_id: str) -> dict[str, Any] | None:
        return {"recipient": {"id": recipient_id}, "sender_action": "typing_on"}

    def build(self, recipient_id: str, text: str, buttons: list[Any] | None = None) -> list[dict[str, Any]]:
        return messenger_messages(recipient_id, text, buttons)

    def media(self, recipient_id: str, url: str) -> dict[str, Any]:
        return image_message(recipient_id, url)

    def native(self, recipient_id: str, custom: dict[str, Any]) -> dict[str, Any] | None:
        return send_api_message(recipient_id, custom)  # a Send API message object, sent as is


class MessengerInput(InputChannel):
    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        """``credentials.yml`` gives the secrets; the media cap comes from the settings
        (``MEDIA_MAX_BYTES``, ``RETENTION_DAYS``)."""
        from bot.settings import load_settings

        if not credentials:
            cls.raise_missing_credentials_exception()
        values = {key: str(value or "") for key, value in credentials.items()}
        settings = load_settings()
        return cls(
            verify_token=values.get("verify_token", ""),
            app_secret=values.get("app_secret", ""),
            page_access_token=values.get("page_access_token", ""),
            graph_api_url=values.get("graph_api_url") or DEFAULT_GRAPH_API_URL,
            graph_api_version=values.get("graph_api_version") or DEFAULT_GRAPH_API_VERSION,
            media_max_bytes=settings.media_max_bytes,
            media_ttl_s=media_ttl(settings.retention_days),
        )

    def __init__(
        self,
        verify_token: str,
        app_secret: str,
        page_access_token: str,
        graph_api_url: str = DEFAULT_GRAPH_API_URL,
        graph_api_version: str = DEFAULT_GRAPH_API_VERSION,
        media_max_bytes: int = DEFAULT_MAX_BYTES,
        media_ttl_s: int = DEFAULT_TTL_S,
    ) -> None:
        self.verify_token = verify_token
        self.app_secret = app_secret
        self.page_access_token = page_access_token
        self.graph = GraphApi(graph_api_url, graph_api_version)
        self.redis = redis_for_channels()  # no connection until first use
        self.window = ReplyWindow(self.redis, CHANNEL)
        media = MediaReceiver(self.redis, attachment_fetcher(self.graph), max_bytes=media_max_bytes, ttl_s=media_ttl_s)
        names = MessengerProfiles(self.redis, self.graph, page_access_token)
        self.intake = Intake(window=self.window, media=media, names=names)
        if not app_secret:
            log.warning("MESSENGER_APP_SECRET is not set: the Messenger channel refuses every webhook (403)")
        if not page_access_token:
            log.warning("MESSENGER_PAGE_ACCESS_TOKEN is not set: Messenger replies will fail")

    def get_output_channel(self) -> OutputChannel:
        return MessengerOutput(self.graph, self.page_access_token, self.window)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        return webhook_blueprint(
            CHANNEL,
            verify_token=self.verify_token,
            app_secret=self.app_secret,
            graph=self.graph,
            parse=parse_messenger,
            output=self.get_output_channel,
            on_new_message=on_new_message,
            redis=self.redis,
            intake=self.intake,
        )
