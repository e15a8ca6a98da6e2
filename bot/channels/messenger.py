"""Facebook Messenger channel: a Facebook page's webhooks in, Send API calls out.

The same guarantees as WhatsApp (:mod:`bot.channels.meta`): ``X-Hub-Signature-256``
checked in constant time with 403 on failure (Rasa's built-in ``facebook`` channel answers
200 and checks only SHA-1), a body size limit, 400 on malformed JSON, and each message
handled once, by its ``mid``.

* In: typed text, a tapped quick reply (its ``payload``) and a postback (its ``payload``)
  go to Rasa; echoes of our own messages, deliveries, reads and reactions are ignored;
  attachments (images, stickers, audio, files, locations) get a polite "text only" answer.
* Out: ``POST {graph}/{version}/me/messages?access_token=...`` with
  ``messaging_type: RESPONSE``; text over 2000 characters is split, options become quick
  replies (at most 13 a message, more are split). An agent's reply starts with their name.

Configured in ``credentials.yml`` as ``bot.channels.messenger.MessengerInput``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint

from bot.channels.meta import (
    MORE_OPTIONS,
    GraphApi,
    Inbound,
    MetaOutput,
    Option,
    as_dict,
    as_list,
    as_text,
    chunks,
    options_from,
    send_all,
    split_text,
    truncate,
    webhook_blueprint,
)

log = logging.getLogger(__name__)

CHANNEL = "messenger"
DEFAULT_GRAPH_API_URL = "https://graph.facebook.com"
DEFAULT_GRAPH_API_VERSION = "v21.0"
TEXT_LIMIT = 2000
MAX_QUICK_REPLIES = 13
QUICK_REPLY_TITLE = 20
QUICK_REPLY_PAYLOAD = 1000
CHOOSE = "Please choose an option:"


# --- inbound ---------------------------------------------------------------------------


def parse_messenger(payload: Any) -> list[Inbound]:
    """The customer messages and postbacks of one webhook, oldest first."""
    payload = as_dict(payload)
    if payload.get("object") != "page":
        return []
    found: list[Inbound] = []
    for entry in as_list(payload.get("entry")):
        for event in as_list(as_dict(entry).get("messaging")):
            inbound = messenger_event(as_dict(event))
            if inbound is not None:
                found.append(inbound)
    return found


def messenger_event(event: dict[str, Any]) -> Inbound | None:
    sender = as_text(as_dict(event.get("sender")).get("id"))
    if not sender:
        return None
    if "message" in event:
        message = as_dict(event.get("message"))
        mid = as_text(message.get("mid"))
        if message.get("is_echo") or not mid:  # our own message, mirrored back to the page
            return None
        payload = as_text(as_dict(message.get("quick_reply")).get("payload"))
        if payload.strip():  # the message's text is the quick reply's title
            return Inbound(mid, sender, payload, "quick_reply", button_title=as_text(message.get("text")) or None)
        text = as_text(message.get("text"))
        if text.strip():
            return Inbound(mid, sender, text, "text")
        attachments = as_list(message.get("attachments"))
        if attachments:
            kind = "sticker" if message.get("sticker_id") else as_text(as_dict(attachments[0]).get("type"))
            return Inbound(mid, sender, None, kind or "attachment")
        return None
    if "postback" in event:
        postback = as_dict(event.get("postback"))
        payload = as_text(postback.get("payload")) or as_text(postback.get("title"))
        # Older postbacks carry no mid; the sender and Meta's timestamp identify a redelivery.
        mid = as_text(postback.get("mid")) or f"postback:{sender}:{event.get('timestamp')}"
        title = as_text(postback.get("title")) or None
        return Inbound(mid, sender, payload, "postback", button_title=title) if payload.strip() else None
    return None  # delivery, read, reaction, referral, optin, ...


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


def image_message(recipient: str, url: str) -> dict[str, Any]:
    return send_api_message(recipient, {"attachment": {"type": "image", "payload": {"url": url, "is_reusable": True}}})


class MessengerOutput(MetaOutput):
    """Sends Rasa's messages (bot turns and agent replies) through the Send API."""

    def __init__(self, graph: GraphApi, page_access_token: str) -> None:
        self.graph = graph
        self.page_access_token = page_access_token

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    async def _send(self, bodies: list[dict[str, Any]]) -> None:
        await send_all(self.graph, CHANNEL, "me/messages", bodies, params={"access_token": self.page_access_token})

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
        if not credentials:
            cls.raise_missing_credentials_exception()
        values = {key: str(value or "") for key, value in credentials.items()}
        return cls(
            verify_token=values.get("verify_token", ""),
            app_secret=values.get("app_secret", ""),
            page_access_token=values.get("page_access_token", ""),
            graph_api_url=values.get("graph_api_url") or DEFAULT_GRAPH_API_URL,
            graph_api_version=values.get("graph_api_version") or DEFAULT_GRAPH_API_VERSION,
        )

    def __init__(
        self,
        verify_token: str,
        app_secret: str,
        page_access_token: str,
        graph_api_url: str = DEFAULT_GRAPH_API_URL,
        graph_api_version: str = DEFAULT_GRAPH_API_VERSION,
    ) -> None:
        self.verify_token = verify_token
        self.app_secret = app_secret
        self.page_access_token = page_access_token
        self.graph = GraphApi(graph_api_url, graph_api_version)
        if not app_secret:
            log.warning("MESSENGER_APP_SECRET is not set: the Messenger channel refuses every webhook (403)")
        if not page_access_token:
            log.warning("MESSENGER_PAGE_ACCESS_TOKEN is not set: Messenger replies will fail")

    def get_output_channel(self) -> OutputChannel:
        return MessengerOutput(self.graph, self.page_access_token)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        return webhook_blueprint(
            CHANNEL,
            verify_token=self.verify_token,
            app_secret=self.app_secret,
            graph=self.graph,
            parse=parse_messenger,
            output=self.get_output_channel,
            on_new_message=on_new_message,
        )
