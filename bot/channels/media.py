"""Files a WhatsApp or Messenger customer sends during a handoff, passed on to the agent.

Outside a handoff the bot reads text only (:data:`bot.channels.meta.ONLY_TEXT`); while a
person is on the chat (``handoff:chat:{id}`` is ``waiting`` or ``assigned``) images and
documents are fetched from Meta, checked, kept in Redis, and the conversation gets a user
message ``[image] <caption>`` or ``[document: <name>] <caption>`` whose metadata carries
``attachment``. The handoff service serves the file to agents from the same hash
(``handoff/media.py``, ``/api/media/{id}``).

**The Redis contract** (one hash per file, written once, never changed):

``media:{id}``  hash, ``id`` a random url-safe string of 24 characters (never Meta's id):
                ``data`` the file's bytes, ``mime`` its checked type, ``name`` the cleaned
                file name ("" when the channel gives none), ``size`` bytes (decimal),
                ``conversation`` the conversation id, ``kind`` ``image`` or ``document``,
                ``at`` Unix time it was stored; expires after ``RETENTION_DAYS`` (30 days
                when that is 0). No other key starts with ``media:``.

**What is refused, politely, in the customer's language:** a file over ``MEDIA_MAX_BYTES``
(its declared size is checked before the download, and the download stops at the cap);
a type outside :data:`ALLOWED` or whose bytes are not what it claims (a file's own type is
never trusted: the first bytes must match it); audio, video and stickers. The agent still
sees that something was sent: the conversation gets ``[image not received: too large]``.

**A failed download loses nothing.** When Meta cannot be reached, times out or answers
5xx/429, :class:`FetchFailed` (transient) propagates: the webhook answers 503 and Meta
delivers the message again, as with any other failure of ours. A refusal that a retry
cannot fix (the media is gone, a 4xx) is not retried: the agent gets the caption with
"not received" and the customer is asked to send the file again. Either way the
customer's words reach the agent and nothing loops forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
import posixpath
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import aiohttp
from redis.asyncio import Redis

from bot.channels.guard import clean_text, script_language
from bot.settings import DEFAULT_MEDIA_MAX_BYTES, load_settings

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = DEFAULT_MEDIA_MAX_BYTES
DEFAULT_TTL_S = 30 * 24 * 3600  # with RETENTION_DAYS=0 (keep conversations), files still go after 30 days
DOWNLOAD_TIMEOUT_S = 30.0
NAME_LIMIT = 100
CAPTION_LIMIT = 1024
IMAGE, DOCUMENT = "image", "document"

IMAGES = frozenset(("image/jpeg", "image/png", "image/webp", "image/gif"))
DOCUMENTS = frozenset(
    (
        "application/pdf",
        "text/plain",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
)
# The types the handoff service serves (handoff/media.py SERVED): nothing is stored that
# an agent could not open.
ALLOWED = IMAGES | DOCUMENTS

# The type a file name suggests (Python's mimetypes depends on the system's tables).
EXTENSIONS = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".pdf": "application/pdf",
    ".txt": "text/plain",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xls": "application/vnd.ms-excel",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

# What a file of each type starts with; a file whose bytes disagree with its type is refused.
_ZIP, _OLE = b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "image/jpeg": lambda d: d.startswith(b"\xff\xd8\xff"),
    "image/png": lambda d: d.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/gif": lambda d: d.startswith((b"GIF87a", b"GIF89a")),
    "image/webp": lambda d: d.startswith(b"RIFF") and d[8:12] == b"WEBP",
    "application/pdf": lambda d: b"%PDF-" in d[:1024],
    "text/plain": lambda d: b"\x00" not in d[:8192],
    "application/msword": lambda d: d.startswith(_OLE),
    "application/vnd.ms-excel": lambda d: d.startswith(_OLE),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": lambda d: d.startswith(_ZIP),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": lambda d: d.startswith(_ZIP),
}

TOO_LARGE = {
    "en": "Sorry, that file is too large: please send files of at most {mb} MB.",
    "ru": "Извините, этот файл слишком большой: отправляйте файлы размером не более {mb} МБ.",
    "ka": "ბოდიში, ეს ფაილი ძალიან დიდია: გამოგზავნეთ არაუმეტეს {mb} მბ ზომის ფაილები.",
    "sr": "Izvinite, ta datoteka je prevelika: šaljite datoteke od najviše {mb} MB.",
    "lv": "Atvainojiet, šis fails ir pārāk liels: lūdzu, sūtiet failus, kas nav lielāki par {mb} MB.",
    "tl": "Paumanhin po, masyadong malaki ang file na ito: magpadala po ng file na hindi hihigit sa {mb} MB.",
}
TYPE_REFUSED = {
    "en": "Sorry, I can only pass on images (JPEG, PNG, WebP, GIF) and documents (PDF, text, Word, Excel).",
    "ru": "Извините, я могу передать только изображения (JPEG, PNG, WebP, GIF) и документы (PDF, текст, Word, Excel).",
    "ka": "ბოდიში, შემიძლია გადავცე მხოლოდ სურათები (JPEG, PNG, WebP, GIF) და დოკუმენტები (PDF, ტექსტი, Word, Excel).",
    "sr": "Izvinite, mogu da prosledim samo slike (JPEG, PNG, WebP, GIF) i dokumente (PDF, tekst, Word, Excel).",
    "lv": "Atvainojiet, es varu nodot tikai attēlus (JPEG, PNG, WebP, GIF) un dokumentus (PDF, teksts, Word, Excel).",
    "tl": "Paumanhin po, mga larawan (JPEG, PNG, WebP, GIF) at dokumento (PDF, text, Word, Excel) lang po ang "
    "maipapasa ko.",
}
NOT_RECEIVED = {
    "en": "Sorry, that file did not reach me. Please send it again.",
    "ru": "Извините, этот файл до меня не дошёл. Пожалуйста, отправьте его ещё раз.",
    "ka": "ბოდიში, ეს ფაილი ვერ მივიღე. გთხოვთ, გამოგზავნოთ ხელახლა.",
    "sr": "Izvinite, ta datoteka nije stigla do mene. Molim vas da je pošaljete ponovo.",
    "lv": "Atvainojiet, šis fails mani nesasniedza. Lūdzu, nosūtiet to vēlreiz.",
    "tl": "Paumanhin po, hindi ko natanggap ang file na ito. Pakipadala po ulit.",
}
REPLIES = {"too large": TOO_LARGE, "type not allowed": TYPE_REFUSED, "could not be fetched": NOT_RECEIVED}


def media_key(media_id: str) -> str:
    """``media:{id}``: the hash of one stored file (see the module's docstring)."""
    return f"media:{media_id}"


def new_media_id() -> str:
    return secrets.token_urlsafe(18)  # 24 characters of [A-Za-z0-9_-]


def media_ttl(retention_days: float) -> int:
    """Seconds a stored file lives: ``RETENTION_DAYS`` when set, else 30 days."""
    return max(1, int(retention_days * 86400)) if retention_days > 0 else DEFAULT_TTL_S


async def store_media(
    redis: Redis,
    conversation_id: str,
    data: bytes,
    mime: str,
    name: str,
    kind: str,
    *,
    ttl_seconds: int | None = None,
) -> dict[str, Any]:
    """Keep one file for the agents; returns the ``attachment`` metadata of the user message.

    ``ttl_seconds`` defaults to :func:`media_ttl` of the process's ``RETENTION_DAYS``.
    """
    if ttl_seconds is None:
        ttl_seconds = media_ttl(load_settings().retention_days)
    media_id = new_media_id()
    name = clean_name(name)
    fields = {
        "data": data,
        "mime": mime,
        "name": name,
        "size": str(len(data)),
        "conversation": conversation_id,
        "kind": kind,
        "at": repr(time.time()),
    }
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(media_key(media_id), mapping=fields)  # type: ignore[arg-type]
        pipe.expire(media_key(media_id), ttl_seconds)
        await pipe.execute()
    return {"id": media_id, "kind": kind, "mime": mime, "name": name, "size": len(data)}


# --- what a message carries ------------------------------------------------------------


@dataclass(frozen=True)
class MediaRef:
    """A file a customer sent, as the webhook names it (nothing fetched yet).

    ``kind`` is ours: ``image`` or ``document`` may be passed on; ``audio``, ``video`` and
    ``sticker`` never are. ``source`` is how the channel fetches it (WhatsApp: Meta's media
    id; Messenger: the attachment's URL). ``mime`` and ``name`` are what the webhook says,
    if anything; neither is trusted.
    """

    kind: str
    source: str
    mime: str = ""
    name: str = ""
    caption: str = ""


@dataclass(frozen=True)
class Download:
    data: bytes
    mime: str = ""  # the Content-Type (or Meta's mime_type), not trusted


class TooLarge(Exception):
    """The file is over the cap (declared, or found while reading)."""


class FetchFailed(Exception):
    """The file could not be fetched; ``transient`` when a later try may succeed."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


Fetch = Callable[[MediaRef, int], Awaitable[Download]]


def clean_name(name: str) -> str:
    """A file name safe to show and to put in a header: no folders, quotes or controls,
    at most :data:`NAME_LIMIT` characters with the extension kept."""
    name = clean_text(name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r'["<>|*?:;\t\n]', "_", name).strip(" .")
    if len(name) > NAME_LIMIT:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 10:
            name = stem[: NAME_LIMIT - len(extension) - 1].rstrip() + "." + extension
        else:
            name = name[:NAME_LIMIT]
    return name


def name_from_url(url: str) -> str:
    """The file name at the end of a URL's path (Messenger's files carry no other)."""
    return clean_name(unquote(posixpath.basename(urlparse(url).path)))


def normal_mime(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def checked_mime(data: bytes, declared: Iterable[str], name: str) -> str | None:
    """The type a file is, if allowed: a declared one or the one its name suggests,
    whichever its first bytes agree with first; ``None`` when none does."""
    for mime in (*(normal_mime(m) for m in declared), name_type(name)):
        if mime in ALLOWED and _SIGNATURES[mime](data):
            return mime
    return None


def name_type(name: str) -> str:
    """The allowed type a file name's extension suggests, or "" (a webhook's declared type
    may be a generic ``application/octet-stream`` for a perfectly good PDF)."""
    return EXTENSIONS.get(posixpath.splitext(name.lower())[1], "")


def attachment_text(kind: str, name: str, caption: str) -> str:
    """The user message the agent reads: ``[image] caption``, ``[document: name] caption``."""
    label = f"[{kind}: {name}]" if kind == DOCUMENT and name else f"[{kind}]"
    caption = " ".join(caption.split())[:CAPTION_LIMIT]
    return f"{label} {caption}".strip()


def refused_text(kind: str, name: str, caption: str, reason: str) -> str:
    """What the agent reads for a file that was not passed on: ``[image not received: too large] caption``."""
    label = f"{kind}: {name}" if kind == DOCUMENT and name else kind
    caption = " ".join(caption.split())[:CAPTION_LIMIT]
    return f"[{label} not received: {reason}] {caption}".strip()


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.3g}"


async def download(
    session: aiohttp.ClientSession,
    url: str,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Download:
    """GET ``url``, refusing more than ``max_bytes`` (by Content-Length, then while reading)."""
    if urlparse(url).scheme not in ("http", "https"):
        raise FetchFailed("the file's address is not an http(s) URL", transient=False)
    try:
        async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)) as answer:
            if answer.status >= 400:
                transient = answer.status >= 500 or answer.status == 429
                raise FetchFailed(f"the file's server answered {answer.status}", transient=transient)
            if answer.content_length is not None and answer.content_length > max_bytes:
                raise TooLarge(f"{answer.content_length} bytes declared")
            parts: list[bytes] = []
            size = 0
            async for chunk in answer.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"more than {max_bytes} bytes")
                parts.append(chunk)
            return Download(b"".join(parts), answer.headers.get("Content-Type", ""))
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise FetchFailed(f"cannot fetch the file: {exc!r}", transient=True) from exc


# --- during a handoff --------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """What became of a file: ``attachment`` when stored; else ``reply`` tells the customer
    why not. ``text`` is the user message for the conversation either way."""

    text: str
    attachment: dict[str, Any] | None = None
    reply: str = ""


class MediaReceiver:
    """Fetches, checks and keeps a customer's file for the agent; one per channel.

    ``fetch`` is the channel's way to get the bytes (WhatsApp: two Graph API calls with the
    access token; Messenger: the attachment URL).
    """

    def __init__(self, redis: Redis, fetch: Fetch, max_bytes: int = DEFAULT_MAX_BYTES, ttl_s: int = DEFAULT_TTL_S):
        self.redis = redis
        self.fetch = fetch
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s

    async def handoff_language(self, conversation_id: str) -> tuple[bool, str | None]:
        """Whether a person has (or is about to take) the chat, and the card's language."""
        from handoff import keys  # handoff.keys pulls in Rasa's broker: only where Rasa runs
        from handoff.queue import ASSIGNED, WAITING

        state, card = await self.redis.hmget(keys.chat(conversation_id), "state", "card")
        state = state.decode() if isinstance(state, bytes) else state
        language = None
        if card:
            try:
                language = json.loads(card).get("language")
            except (ValueError, AttributeError):
                language = None
        return state in (WAITING, ASSIGNED), language if isinstance(language, str) else None

    def reply(self, reason: str, language: str | None, caption: str) -> str:
        messages = REPLIES[reason]
        language = language if language in messages else script_language(caption) if caption else "en"
        return messages.get(language, messages["en"]).format(mb=megabytes(self.max_bytes))

    async def receive(self, conversation_id: str, ref: MediaRef, language: str | None = None) -> Received:
        """Fetch and keep ``ref``; :class:`FetchFailed` (transient) propagates so the
        webhook is answered 503 and Meta delivers the message again."""
        name = clean_name(ref.name)

        def refused(reason: str) -> Received:
            log.info("%s: %s file not passed on: %s", conversation_id, ref.kind, reason)
            text = refused_text(ref.kind, name, ref.caption, reason)
            return Received(text, reply=self.reply(reason, language, ref.caption))

        if ref.kind not in (IMAGE, DOCUMENT):
            return refused("type not allowed")
        declared = normal_mime(ref.mime)
        if declared and declared not in ALLOWED and not name_type(name):
            return refused("type not allowed")  # known before downloading anything
        try:
            got = await self.fetch(ref, self.max_bytes)
        except TooLarge as exc:
            log.info("%s: file refused: %s", conversation_id, exc)
            return refused("too large")
        except FetchFailed as exc:
            if exc.transient:
                raise
            log.warning("%s: %s file could not be fetched: %s", conversation_id, ref.kind, exc)
            return refused("could not be fetched")
        if len(got.data) > self.max_bytes:  # a fetcher that did not stop at the cap
            return refused("too large")
        if not got.data:
            return refused("could not be fetched")
        mime = checked_mime(got.data, (got.mime, declared), name)
        if mime is None or (ref.kind == IMAGE and mime not in IMAGES):
            return refused("type not allowed")
        attachment = await store_media(
            self.redis, conversation_id, got.data, mime, name, ref.kind, ttl_seconds=self.ttl_s
        )
        return Received(attachment_text(ref.kind, attachment["name"], ref.caption), attachment)
