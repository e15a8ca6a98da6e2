"""WhatsApp Cloud API channel: Meta's webhooks in, Graph API ``/messages`` calls out.

* ``GET /webhooks/whatsapp/webhook`` answers Meta's subscription check;
  ``POST`` the same URL receives messages. Signature, size, JSON and de-duplication rules
  are in :mod:`bot.channels.meta`.
* Text is passed to Rasa; a tapped button or list row sends its ``id``, which is the Rasa
  payload (``/faq_choice{...}``, ``/request_human``). Status callbacks are ignored; images,
  locations, stickers, audio and the like get a polite "text only" answer and never reach
  Rasa. The sender id is the customer's WhatsApp number (``wa_id``); their profile name
  goes into the message metadata as ``customer_name`` for the agent's handoff card.
* :meth:`WhatsAppInput.get_output_channel` lets Rasa's HTTP API (``output_channel=latest``)
  deliver an agent's reply; a message carrying ``agent`` metadata starts with their name.
* Out, WhatsApp's limits shape the message: text over 4096 characters is split; up to
  3 options become reply buttons, 4-10 a list, more several lists.

Configured in ``credentials.yml`` as ``bot.channels.whatsapp.WhatsAppInput``.
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

CHANNEL = "whatsapp"
DEFAULT_GRAPH_API_URL = "https://graph.facebook.com"
DEFAULT_GRAPH_API_VERSION = "v21.0"
TEXT_LIMIT = 4096
BODY_LIMIT = 1024  # body of an interactive message
MAX_BUTTONS = 3
BUTTON_TITLE = 20
BUTTON_ID = 256
MAX_ROWS = 10
ROW_TITLE = 24
ROW_DESCRIPTION = 72
ROW_ID = 200
LIST_BUTTON = "Choose an option"
SECTION_TITLE = "Options"
CHOOSE = "Please choose an option:"
# Messages that are not a question and need no answer: emoji reactions, "number changed"
# notices, and messages WhatsApp itself deleted.
SILENT_TYPES = {"reaction", "system", "ephemeral", "request_welcome"}


# --- inbound ---------------------------------------------------------------------------


def parse_whatsapp(payload: Any, phone_number_id: str = "") -> list[Inbound]:
    """The customer messages of one webhook, oldest first; statuses are left out.

    A change addressed to another phone number of the same business account is skipped,
    so one app may serve several numbers without answering from the wrong one.
    """
    payload = as_dict(payload)
    if payload.get("object") != "whatsapp_business_account":
        return []
    found: list[Inbound] = []
    for entry in as_list(payload.get("entry")):
        for change in as_list(as_dict(entry).get("changes")):
            change = as_dict(change)
            if change.get("field", "messages") != "messages":
                continue
            value = as_dict(change.get("value"))
            to_number = as_text(as_dict(value.get("metadata")).get("phone_number_id"))
            if phone_number_id and to_number and to_number != phone_number_id:
                log.info("whatsapp message for phone number id %s ignored (ours is %s)", to_number, phone_number_id)
                continue
            names = {
                as_text(as_dict(contact).get("wa_id")): as_text(as_dict(as_dict(contact).get("profile")).get("name"))
                for contact in as_list(value.get("contacts"))
            }
            for message in as_list(value.get("messages")):
                inbound = whatsapp_message(as_dict(message), names)
                if inbound is not None:
                    found.append(inbound)
    return found


def whatsapp_message(message: dict[str, Any], names: dict[str, str]) -> Inbound | None:
    message_id, sender = as_text(message.get("id")), as_text(message.get("from"))
    kind = as_text(message.get("type")) or "unknown"
    if not message_id or not sender or kind in SILENT_TYPES:
        return None
    text: str | None = None
    title: str | None = None
    if kind == "text":
        text = as_text(as_dict(message.get("text")).get("body"))
    elif kind == "interactive":
        interactive = as_dict(message.get("interactive"))
        reply_type = as_text(interactive.get("type"))
        if reply_type in ("button_reply", "list_reply"):
            reply = as_dict(interactive.get(reply_type))
            text = as_text(reply.get("id")) or as_text(reply.get("title"))
            title = as_text(reply.get("title")) or None
            kind = reply_type
    elif kind == "button":  # a quick-reply button of a template message
        button = as_dict(message.get("button"))
        text = as_text(button.get("payload")) or as_text(button.get("text"))
        title = as_text(button.get("text")) or None
    if text is not None and not text.strip():
        return None
    return Inbound(message_id, sender, text, kind, names.get(sender) or None, button_title=title)


# --- outbound --------------------------------------------------------------------------


def text_message(to: str, text: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": text, "preview_url": False},
    }


def interactive_message(to: str, interactive: dict[str, Any]) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "interactive",
        "interactive": interactive,
    }


def _id(option: Option, limit: int) -> str:
    return option.payload if len(option.payload) <= limit else truncate(option.title, limit)


def buttons_message(to: str, body: str, options: list[Option]) -> dict[str, Any]:
    buttons = [
        {"type": "reply", "reply": {"id": _id(option, BUTTON_ID), "title": truncate(option.title, BUTTON_TITLE)}}
        for option in options
    ]
    return interactive_message(to, {"type": "button", "body": {"text": body}, "action": {"buttons": buttons}})


def list_message(to: str, body: str, options: list[Option]) -> dict[str, Any]:
    rows = []
    for option in options:
        row = {"id": _id(option, ROW_ID), "title": truncate(option.title, ROW_TITLE)}
        if row["title"] != " ".join(option.title.split()):  # the description shows the whole title
            row["description"] = truncate(option.title, ROW_DESCRIPTION)
        rows.append(row)
    action = {"button": LIST_BUTTON, "sections": [{"title": SECTION_TITLE, "rows": rows}]}
    return interactive_message(to, {"type": "list", "body": {"text": body}, "action": action})


def whatsapp_messages(to: str, text: str, buttons: list[Any] | None = None) -> list[dict[str, Any]]:
    """The Graph API bodies that show ``text`` and ``buttons`` within WhatsApp's limits."""
    options, links = options_from(buttons or [])
    text = "\n".join([text.strip(), *links]).strip()
    if not options:
        return [text_message(to, part) for part in split_text(text, TEXT_LIMIT)]
    messages: list[dict[str, Any]] = []
    body = text
    if len(text) > BODY_LIMIT:  # too long for an interactive body: say it first, then offer
        # The last paragraph (a guide step's check, "Is the light white now?") stays with
        # the buttons that answer it, when it fits.
        before, _, last = text.rpartition("\n\n")
        if before.strip() and len(last.strip()) <= BODY_LIMIT:
            text, body = before.strip(), last.strip()
        else:
            body = CHOOSE
        messages += [text_message(to, part) for part in split_text(text, TEXT_LIMIT)]
    body = body or CHOOSE
    if len(options) <= MAX_BUTTONS:
        return [*messages, buttons_message(to, body, options)]
    for index, group in enumerate(chunks(options, MAX_ROWS)):
        messages.append(list_message(to, body if index == 0 else MORE_OPTIONS, group))
    return messages


def media_message(to: str, url: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "image",
        "image": {"link": url},
    }


class WhatsAppOutput(MetaOutput):
    """Sends Rasa's messages (bot turns and agent replies) through the Cloud API."""

    def __init__(self, graph: GraphApi, phone_number_id: str, access_token: str) -> None:
        self.graph = graph
        self.phone_number_id = phone_number_id
        self.access_token = access_token

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    async def _send(self, bodies: list[dict[str, Any]]) -> None:
        path = f"{self.phone_number_id}/messages"
        headers = {"Authorization": f"Bearer {self.access_token}"}
        await send_all(self.graph, CHANNEL, path, bodies, headers=headers)

    def build(self, recipient_id: str, text: str, buttons: list[Any] | None = None) -> list[dict[str, Any]]:
        return whatsapp_messages(recipient_id, text, buttons)

    def media(self, recipient_id: str, url: str) -> dict[str, Any]:
        return media_message(recipient_id, url)

    def native(self, recipient_id: str, custom: dict[str, Any]) -> dict[str, Any] | None:
        if not custom.get("type"):
            return None
        return {"messaging_product": "whatsapp", **custom, "to": recipient_id}  # a Cloud API message, as is


class WhatsAppInput(InputChannel):
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
            access_token=values.get("access_token", ""),
            phone_number_id=values.get("phone_number_id", ""),
            graph_api_url=values.get("graph_api_url") or DEFAULT_GRAPH_API_URL,
            graph_api_version=values.get("graph_api_version") or DEFAULT_GRAPH_API_VERSION,
        )

    def __init__(
        self,
        verify_token: str,
        app_secret: str,
        access_token: str,
        phone_number_id: str,
        graph_api_url: str = DEFAULT_GRAPH_API_URL,
        graph_api_version: str = DEFAULT_GRAPH_API_VERSION,
    ) -> None:
        self.verify_token = verify_token
        self.app_secret = app_secret
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.graph = GraphApi(graph_api_url, graph_api_version)
        if not app_secret:
            log.warning("WHATSAPP_APP_SECRET is not set: the WhatsApp channel refuses every webhook (403)")
        if not access_token or not phone_number_id:
            log.warning("WHATSAPP_ACCESS_TOKEN or WHATSAPP_PHONE_NUMBER_ID is not set: WhatsApp replies will fail")

    def get_output_channel(self) -> OutputChannel:
        return WhatsAppOutput(self.graph, self.phone_number_id, self.access_token)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        return webhook_blueprint(
            CHANNEL,
            verify_token=self.verify_token,
            app_secret=self.app_secret,
            graph=self.graph,
            parse=lambda payload: parse_whatsapp(payload, self.phone_number_id),
            output=self.get_output_channel,
            on_new_message=on_new_message,
        )
