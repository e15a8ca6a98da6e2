"""WhatsApp Cloud API channel: Meta's webhooks in, Graph API ``/messages`` calls out.

* ``GET /webhooks/whatsapp/webhook`` answers Meta's subscription check;
  ``POST`` the same URL receives messages. Signature, size, JSON and de-duplication rules
  are in :mod:`bot.channels.meta`.
* Text is passed to Rasa; a tapped button or list row sends its ``id``, which is the Rasa
  payload (``/faq_choice{...}``, ``/request_human``). Status callbacks are ignored. Images
  and documents sent during a handoff are fetched from the Graph API (``GET /{media id}``
  for the URL, then the URL, both with the access token) and passed on to the agent
  (:mod:`bot.channels.media`); otherwise images, documents, locations, stickers, audio and
  the like get a polite "text only" answer and never reach Rasa. The sender id is the
  customer's WhatsApp number (``wa_id``); their profile name goes into the message
  metadata as ``customer_name`` for the agent's handoff card.
* :meth:`WhatsAppInput.get_output_channel` lets Rasa's HTTP API (``output_channel=latest``)
  deliver an agent's reply; a message carrying ``agent`` metadata starts with their name.
* Out, WhatsApp's limits shape the message: text over 4096 characters is split; up to
  3 options become reply buttons, 4-10 a list, more several lists.
* More than 24 hours after the customer's last message WhatsApp accepts only approved
  templates (:mod:`bot.channels.window`): the text then goes out as ``WHATSAPP_TEMPLATE``
  (its body's one ``{{1}}`` parameter, at most 1024 characters on one line; buttons and
  images are dropped). With no template configured nothing is sent and the failure is
  logged, naming the setting; Meta would refuse free-form text (error 131047).

Configured in ``credentials.yml`` as ``bot.channels.whatsapp.WhatsAppInput``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint

from bot.channels.media import (
    DEFAULT_MAX_BYTES,
    DEFAULT_TTL_S,
    DOCUMENT,
    IMAGE,
    Download,
    Fetch,
    FetchFailed,
    MediaReceiver,
    MediaRef,
    TooLarge,
    download,
    media_ttl,
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
from bot.channels.window import OPEN, ReplyWindow

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
# Files: images and documents reach an agent during a handoff; the rest are refused then.
MEDIA_TYPES = {"image": IMAGE, "document": DOCUMENT, "audio": "audio", "video": "video", "sticker": "sticker"}
MEDIA_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
TEMPLATE_PARAMETER = 1024  # characters of a template body's parameter
DEFAULT_TEMPLATE_LANGUAGE = "en_US"


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
    media: MediaRef | None = None
    if kind in MEDIA_TYPES:
        content = as_dict(message.get(kind))
        media = MediaRef(
            MEDIA_TYPES[kind],
            as_text(content.get("id")),
            mime=as_text(content.get("mime_type")),
            name=as_text(content.get("filename")),
            caption=as_text(content.get("caption")),
        )
    elif kind == "text":
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
    return Inbound(
        message_id,
        sender,
        text,
        kind,
        names.get(sender) or None,
        button_title=title,
        media=media,
    )


def media_fetcher(graph: GraphApi, access_token: str) -> Fetch:
    """Fetch a customer's file the Cloud API way: ``GET /{media id}`` gives its URL, type
    and size, then the URL gives the bytes; both calls carry the access token. The declared
    size is checked before the download, which stops at the cap anyway."""

    async def fetch(ref: MediaRef, max_bytes: int) -> Download:
        if not MEDIA_ID.fullmatch(ref.source):
            raise FetchFailed("the webhook's media id is not one", transient=False)
        auth = {"Authorization": f"Bearer {access_token}"}
        try:
            info = await graph.get(ref.source, headers=auth)
        except GraphApiError as exc:
            raise FetchFailed(str(exc), transient=exc.transient) from exc
        size = info.get("file_size")
        size = int(size) if isinstance(size, int) or (isinstance(size, str) and size.isdigit()) else None
        if size is not None and size > max_bytes:
            raise TooLarge(f"{size} bytes declared by the Graph API")
        url = as_text(info.get("url"))
        if not url:
            raise FetchFailed("the Graph API gave no URL for the media", transient=False)
        got = await download(graph.session(), url, max_bytes, headers=auth)
        return Download(got.data, as_text(info.get("mime_type")) or got.mime)

    return fetch


# --- outbound --------------------------------------------------------------------------


def typing_indicator(message_id: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": message_id,
        "typing_indicator": {"type": "text"},
    }


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


@dataclass(frozen=True)
class Template:
    """An approved message template whose body has one ``{{1}}`` parameter: the text."""

    name: str
    language: str = DEFAULT_TEMPLATE_LANGUAGE


def template_message(to: str, template: Template, text: str) -> dict[str, Any]:
    """A template message carrying ``text`` as its one body parameter: on one line (Meta
    refuses new lines and runs of spaces in parameters) and at most 1024 characters."""
    parameter = {"type": "text", "text": truncate(text, TEMPLATE_PARAMETER)}
    return {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "template",
        "template": {
            "name": template.name,
            "language": {"code": template.language},
            "components": [{"type": "body", "parameters": [parameter]}],
        },
    }


def shown_text(body: dict[str, Any]) -> str:
    """The text a customer reads in one of our message bodies ("" for an image)."""
    if body.get("type") == "text":
        return as_text(as_dict(body.get("text")).get("body"))
    if body.get("type") == "interactive":
        return as_text(as_dict(as_dict(body.get("interactive")).get("body")).get("text"))
    return ""


def outside_window(to: str, bodies: list[dict[str, Any]], template: Template | None) -> list[dict[str, Any]]:
    """What may go to a customer whose last message is more than 24 hours old: one template
    with the text of ``bodies`` (buttons and images dropped); :class:`OutsideWindow` when
    no template is configured or there is no text to carry."""
    if template is None:
        raise OutsideWindow(
            "the customer's last message is more than 24 hours old, so WhatsApp accepts only a template "
            "message, and WHATSAPP_TEMPLATE is not set; free-form text not sent"
        )
    text = "\n".join(part for part in map(shown_text, bodies) if part.strip())
    if not text.strip():
        raise OutsideWindow("outside WhatsApp's 24-hour window, and the message has no text a template can carry")
    return [template_message(to, template, text)]


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

    def __init__(
        self,
        graph: GraphApi,
        phone_number_id: str,
        access_token: str,
        window: ReplyWindow | None = None,
        template: Template | None = None,
    ) -> None:
        self.graph = graph
        self.phone_number_id = phone_number_id
        self.access_token = access_token
        self.window = window
        self.template = template

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    async def _post(self, bodies: list[dict[str, Any]]) -> None:
        path = f"{self.phone_number_id}/messages"
        headers = {"Authorization": f"Bearer {self.access_token}"}
        await send_all(self.graph, CHANNEL, path, bodies, headers=headers)

    def within_window(self, recipient_id: str, bodies: list[dict[str, Any]], state: str) -> list[dict[str, Any]]:
        if state == OPEN:
            return bodies
        sent = outside_window(recipient_id, bodies, self.template)
        name = sent[0]["template"]["name"]
        log.info("whatsapp: %s last wrote more than 24 hours ago: sent as template %s", recipient_id, name)
        return sent

    async def typing(self, recipient_id: str) -> None:
        """WhatsApp shows "typing" only as a reply to the customer's latest message, which
        it marks read at the same time (Cloud API ``typing_indicator``); within the window."""
        if self.window is None or await self.window.state(recipient_id) != OPEN:
            return
        message_id = await self.window.last_message(recipient_id)
        if message_id:
            await self._post([typing_indicator(message_id)])

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
        """``credentials.yml`` gives the secrets; the template and the media cap come from
        the settings (``WHATSAPP_TEMPLATE``, ``WHATSAPP_TEMPLATE_LANGUAGE``, ``MEDIA_MAX_BYTES``,
        ``RETENTION_DAYS``)."""
        from bot.settings import load_settings

        if not credentials:
            cls.raise_missing_credentials_exception()
        values = {key: str(value or "") for key, value in credentials.items()}
        settings = load_settings()
        return cls(
            verify_token=values.get("verify_token", ""),
            app_secret=values.get("app_secret", ""),
            access_token=values.get("access_token", ""),
            phone_number_id=values.get("phone_number_id", ""),
            graph_api_url=values.get("graph_api_url") or DEFAULT_GRAPH_API_URL,
            graph_api_version=values.get("graph_api_version") or DEFAULT_GRAPH_API_VERSION,
            template=settings.whatsapp_template,
            template_language=settings.whatsapp_template_language,
            media_max_bytes=settings.media_max_bytes,
            media_ttl_s=media_ttl(settings.retention_days),
        )

    def __init__(
        self,
        verify_token: str,
        app_secret: str,
        access_token: str,
        phone_number_id: str,
        graph_api_url: str = DEFAULT_GRAPH_API_URL,
        graph_api_version: str = DEFAULT_GRAPH_API_VERSION,
        template: str = "",
        template_language: str = DEFAULT_TEMPLATE_LANGUAGE,
        media_max_bytes: int = DEFAULT_MAX_BYTES,
        media_ttl_s: int = DEFAULT_TTL_S,
    ) -> None:
        self.verify_token = verify_token
        self.app_secret = app_secret
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.graph = GraphApi(graph_api_url, graph_api_version)
        self.template = Template(template, template_language or DEFAULT_TEMPLATE_LANGUAGE) if template else None
        self.redis = redis_for_channels()  # no connection until first use
        self.window = ReplyWindow(self.redis, CHANNEL)
        fetch = media_fetcher(self.graph, access_token)
        self.media = MediaReceiver(self.redis, fetch, max_bytes=media_max_bytes, ttl_s=media_ttl_s)
        if not app_secret:
            log.warning("WHATSAPP_APP_SECRET is not set: the WhatsApp channel refuses every webhook (403)")
        if not access_token or not phone_number_id:
            log.warning("WHATSAPP_ACCESS_TOKEN or WHATSAPP_PHONE_NUMBER_ID is not set: WhatsApp replies will fail")
        if not template:
            log.warning(
                "WHATSAPP_TEMPLATE is not set: messages to customers who last wrote more than 24 hours ago "
                "(late agent replies) are not sent"
            )

    def get_output_channel(self) -> OutputChannel:
        return WhatsAppOutput(self.graph, self.phone_number_id, self.access_token, self.window, self.template)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        return webhook_blueprint(
            CHANNEL,
            verify_token=self.verify_token,
            app_secret=self.app_secret,
            graph=self.graph,
            parse=lambda payload: parse_whatsapp(payload, self.phone_number_id),
            output=self.get_output_channel,
            on_new_message=on_new_message,
            redis=self.redis,
            intake=Intake(window=self.window, media=self.media),
        )
