"""Files customers sent during a handoff, for the agents' console (``/api/media/{id}``).

The channels store them (``bot/channels/media.py``: a Redis hash with ``data``, ``mime``,
``name``, ``size``, ``conversation``, ``kind``, ``at``); this serves them to signed-in agents.
A customer's file is never trusted: only image and document types are served, as their
declared type with ``nosniff``, documents as downloads, and every response is sandboxed so
a file cannot run script in the console's origin.
"""

from __future__ import annotations

import re

from aiohttp import web

from bot.channels.media import ALLOWED, IMAGES, media_key

INLINE = IMAGES  # shown in the console; the rest of SERVED are downloads
SERVED = ALLOWED  # exactly what the channels store (bot/channels/media.py)
MEDIA_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def _s(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


async def get_media(request: web.Request) -> web.Response:
    from handoff.app import SERVICES

    media_id = request.match_info["id"]
    if not MEDIA_ID.match(media_id):
        return web.json_response({"error": "no such file"}, status=404)
    data = await request.app[SERVICES].redis.hgetall(media_key(media_id))
    fields = {_s(k): v for k, v in data.items()}
    mime = _s(fields.get("mime")).lower()
    if not fields.get("data") or mime not in SERVED:
        return web.json_response({"error": "no such file"}, status=404)
    name = re.sub(r"[^\w .()-]", "_", _s(fields.get("name")))[:100] or f"file-{media_id[:8]}"
    disposition = "inline" if mime in INLINE else "attachment"
    return web.Response(
        body=fields["data"],
        content_type=mime,
        headers={
            "Content-Disposition": f'{disposition}; filename="{name}"',
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=3600",
        },
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/media/{id}", get_media)
