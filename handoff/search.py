"""Search over the chats people handled (``/api/search?q=``), for agents.

What a chat is found by: its conversation id, the customer's name, the card's summary of
what they said, the reason, the team, the address left for a follow-up and the agent who
had it. It walks the handoff records (one SCAN, at most ``MAX_SCANNED`` of them) rather than
an index: enough for a team's recent history; a deployment with far more chats would want
a search engine, which this does not pretend to be.
"""

from __future__ import annotations

from aiohttp import web

from handoff import keys

MAX_QUERY = 100
MAX_RESULTS = 20
MAX_SCANNED = 20_000


def matches(words: list[str], haystack: str) -> bool:
    return all(word in haystack for word in words)


async def search(request: web.Request) -> web.Response:
    from handoff.app import SERVICES

    services = request.app[SERVICES]
    query = " ".join(str(request.query.get("q") or "").split())[:MAX_QUERY].casefold()
    words = [w for w in query.split(" ") if w]
    if not words:
        return web.json_response({"error": "q: what to look for"}, status=400)
    found, scanned = [], 0
    prefix = keys.chat("")
    async for raw in services.redis.scan_iter(match=keys.chat("*"), count=500):
        scanned += 1
        if scanned > MAX_SCANNED:
            break
        conversation_id = (raw.decode() if isinstance(raw, bytes) else raw).removeprefix(prefix)
        chat = await services.queue.get(conversation_id)
        if chat is None:
            continue
        card = chat.card
        haystack = " ".join(
            str(part or "")
            for part in (
                chat.conversation_id,
                card.customer_name,
                " ".join(card.summary),
                card.reason,
                chat.team,
                chat.contact,
                chat.agent,
                card.channel,
            )
        ).casefold()
        if matches(words, haystack):
            found.append(chat)
    found.sort(key=lambda c: c.created_at, reverse=True)
    return web.json_response(
        {"results": [c.summary() for c in found[:MAX_RESULTS]], "more": len(found) > MAX_RESULTS, "scanned": scanned}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/search", search)
