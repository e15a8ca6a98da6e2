"""The editors' page in the console: what the bot could not answer, and a "try it" box.

Behind the console's login; every route needs the ``editor`` role (``app.required_role``).
The knowledge base and the sentence encoder are loaded the first time an editor asks, on
a thread, so the service starts as fast as before and agents who never open the page pay
nothing. The matcher follows the files like the action server's (``KnowledgeBaseStore``),
so "try it" shows what the bot answers after an editor's save.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.kb.store import KnowledgeBaseStore
from handoff import keys

EDITOR_STORE = web.AppKey("editor_store", dict)
MAX_TRY = 500  # characters of a "try it" question
REPORT_TTL = 30.0  # seconds a computed unanswered report is served again
MAX_PENDING = 500  # suggestions waiting for editors; more are refused until some are handled
MAX_QUESTION, MAX_ANSWER = 500, 2000


def _services(app: web.Application):
    from handoff.app import SERVICES

    return app[SERVICES]


async def _store(app: web.Application) -> KnowledgeBaseStore:
    """The knowledge base as the bot serves it, built on first use (off the event loop)."""
    holder = app[EDITOR_STORE]
    if "store" not in holder:
        settings = _services(app).settings
        store = KnowledgeBaseStore(settings.kb_dir, settings.match)
        await asyncio.to_thread(store.matcher)
        holder.setdefault("store", store)
    return holder["store"]


async def editor_page(request: web.Request) -> web.FileResponse:
    from handoff.app import STATIC

    return web.FileResponse(STATIC / "editor.html")


async def try_it(request: web.Request) -> web.Response:
    """What the bot would answer to ``text`` and why: the decision, the score of each
    candidate entry, the language it would answer in, and the reply itself."""
    from bot.kb.guides import start
    from bot.kb.model import DEFAULT_LANGUAGE, pick
    from bot.kb.reply import reply_for
    from bot.language import guess_language

    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return web.json_response({"error": 'send JSON: {"text": "..."}'}, status=400)
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        return web.json_response({"error": "type a question to try"}, status=400)
    if len(text) > MAX_TRY:
        return web.json_response({"error": f"at most {MAX_TRY} characters"}, status=400)
    store = await _store(request.app)

    def run() -> dict[str, Any]:
        matcher = store.matcher()
        match = matcher.match(text)
        language = guess_language(text, default=DEFAULT_LANGUAGE)
        entry = matcher.kb.get(match.id) if match.id else None
        if entry is not None and entry.guide is not None and match.decision == "answer":
            replies = start(matcher.kb, entry, language).replies
        else:
            replies = (reply_for(match, matcher.kb, language),)
        candidates = []
        for candidate in match.candidates:
            found = matcher.kb.get(candidate.id)
            candidates.append(
                {
                    "id": candidate.id,
                    "score": candidate.score,
                    "question": pick(found.question, DEFAULT_LANGUAGE) if found else None,
                    "guide": bool(found and found.guide),
                    "source": f"{_relative(found.source, store.directory)}:{found.line}" if found else None,
                }
            )
        return {
            "text": text,
            "decision": match.decision,
            "id": match.id,
            "score": match.score,
            "language": language,
            "candidates": candidates,
            "replies": [{"text": r.text, "buttons": [b["title"] for b in r.buttons]} for r in replies],
            "cutoffs": {"answer": store.settings.answer_cutoff, "suggest": store.settings.suggest_cutoff},
        }

    return web.json_response(await asyncio.to_thread(run))


def _relative(source: str, directory: Path) -> str:
    """``billing.yml`` rather than the server's absolute path: where an editor finds it."""
    try:
        return str(Path(source).resolve().relative_to(directory.resolve()))
    except ValueError:
        return source


async def _events(app: web.Application) -> list[dict[str, Any]]:
    """Every event in the stream, oldest first (the stream is capped by the broker)."""
    from bot.kb.unanswered import event_of
    from handoff.privacy import stream_entries

    entries = stream_entries(_services(app).redis, keys.EVENT_STREAM)
    return [event for _, fields in [item async for item in entries] if (event := event_of(fields))]


async def unanswered_groups(request: web.Request) -> web.Response:
    """The unanswered report (``bot.kb.unanswered``), recomputed at most every REPORT_TTL s."""
    from bot.kb import unanswered

    holder = request.app[EDITOR_STORE]
    cached = holder.get("report")
    if cached is not None and time.monotonic() - cached[0] < REPORT_TTL and "fresh" not in request.query:
        return web.json_response(cached[1])
    store = await _store(request.app)
    events = await _events(request.app)
    groups = await asyncio.to_thread(unanswered.report, events, store.kb)
    result = {"groups": groups[:100], "total": sum(g["count"] for g in groups), "events": len(events)}
    holder["report"] = (time.monotonic(), result)
    return web.json_response(result)


# --- agents' answers suggested for the knowledge base --------------------------------------


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text='{"error": "send a JSON object"}', content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "send a JSON object"}', content_type="application/json")
    return body


def _text_field(body: dict[str, Any], name: str, limit: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise web.HTTPBadRequest(text=json.dumps({"error": f"{name} is empty"}), content_type="application/json")
    if len(value) > limit:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name} is longer than {limit} characters"}), content_type="application/json"
        )
    return value.strip()


def _agent_reply(event: dict[str, Any]) -> bool:
    """A message an agent wrote (not the automatic "this is Ann" greeting)."""
    metadata = event.get("metadata") or {}
    return event.get("event") == "bot" and bool(metadata.get("agent")) and not metadata.get("greeting")


def suggestion_from(tracker: dict[str, Any]) -> dict[str, str] | None:
    """What a closed chat offers the knowledge base: the agent's last answer and the
    customer's question before it (the last message that was a question, not "a person
    please", a greeting or a button), both for the agent to edit before sending."""
    from bot.kb.unanswered import SKIP_INTENTS

    skip = SKIP_INTENTS - {"out_of_scope"}  # the bot thought it off-topic; the agent answered it
    events = tracker.get("events") or []
    if not any(_agent_reply(event) for event in events):
        return None
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if event.get("event") != "user":
            continue
        later = [str(e.get("text") or "") for e in events[index + 1 :] if _agent_reply(e)]
        text = str(event.get("text") or "").strip()
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if later and text and not text.startswith("/") and intent not in skip:
            return {"question": text, "answer": "\n\n".join(later[-3:])}
    return None


async def suggest(request: web.Request) -> web.Response:
    """An agent suggests a closed chat's question and their answer for the knowledge base.
    Only the agent who held the chat may; it waits for an editor, it reaches no customer."""
    from bot.language import guess_language

    services = _services(request.app)
    conversation_id, agent = request.match_info["id"], request[_agent_key()]
    chat = await services.queue.get(conversation_id)
    if chat is None or chat.agent != agent:
        return web.json_response({"error": "only the agent who handled this chat can suggest from it"}, status=403)
    body = await _body(request)
    question, answer = _text_field(body, "question", MAX_QUESTION), _text_field(body, "answer", MAX_ANSWER)
    if await services.redis.zcard(keys.SUGGESTIONS) >= MAX_PENDING:
        return web.json_response({"error": "the editors have too many suggestions waiting; try later"}, status=429)
    suggestion_id = uuid.uuid4().hex[:16]
    now = time.time()
    await services.redis.hset(
        keys.suggestion(suggestion_id),
        mapping={
            "question": question,
            "answer": answer,
            "agent": agent,
            "conversation_id": conversation_id,
            "language": guess_language(question),
            "created_at": now,
        },
    )
    await services.redis.zadd(keys.SUGGESTIONS, {suggestion_id: now})
    return web.json_response({"id": suggestion_id}, status=201)


def _agent_key() -> str:
    from handoff.app import AGENT

    return AGENT


async def _suggestion(app: web.Application, suggestion_id: str) -> dict[str, str] | None:
    raw = await _services(app).redis.hgetall(keys.suggestion(suggestion_id))
    if not raw:
        return None
    return {_s(k): _s(v) for k, v in raw.items()} | {"id": suggestion_id}


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def suggestions(request: web.Request) -> web.Response:
    """Waiting suggestions, oldest first, each with the entry the bot finds closest to its
    question (where a new phrasing most likely belongs)."""
    from bot.kb.model import DEFAULT_LANGUAGE, pick

    ids = [_s(i) for i in await _services(request.app).redis.zrange(keys.SUGGESTIONS, 0, MAX_PENDING - 1)]
    found = [s for s in [await _suggestion(request.app, i) for i in ids] if s]
    store = await _store(request.app)

    def closest() -> list[dict[str, Any]]:
        matcher = store.matcher()
        out = []
        for item, match in zip(found, matcher.match_many([s["question"] for s in found]), strict=True):
            best = match.candidates[0] if match.candidates else None
            entry = matcher.kb.get(best.id) if best else None
            item = {**item, "created_at": float(item.get("created_at") or 0)}
            item["closest"] = {
                "id": best.id if best else None,
                "score": best.score if best else None,
                "question": pick(entry.question, DEFAULT_LANGUAGE) if entry else None,
                "tags": list(entry.tags) if entry else [],
                "guide": bool(entry and entry.guide),
            }
            item["decision"] = match.decision
            out.append(item)
        return out

    return web.json_response({"suggestions": await asyncio.to_thread(closest) if found else []})


_writing = threading.Lock()  # one change to the files at a time (read, modify, check, write)


async def _resolve(request: web.Request, change) -> web.Response:
    """Apply an editor's decision on a suggestion (``change`` writes the files, on a thread)
    and forget the suggestion. Taking it off the list first means two editors never apply
    it twice; a refused change puts it back and says why."""
    from bot.kb.edit import EditError

    redis = _services(request.app).redis
    suggestion_id = request.match_info["sid"]
    item = await _suggestion(request.app, suggestion_id)
    if item is None or not await redis.zrem(keys.SUGGESTIONS, suggestion_id):
        return web.json_response({"error": "no such suggestion (another editor may have handled it)"}, status=404)
    path = None
    if change is not None:
        store = await _store(request.app)

        def locked() -> Path:
            with _writing:
                return change(store, item)

        try:
            path = await asyncio.to_thread(locked)
        except EditError as exc:
            await redis.zadd(keys.SUGGESTIONS, {suggestion_id: float(item.get("created_at") or time.time())})
            problems = [str(p) for p in exc.problems]
            return web.json_response({"error": str(exc).splitlines()[0], "problems": problems}, status=400)
        await asyncio.to_thread(store.wait, 30)  # "try it" shows the change at once
        path = _relative(str(path), store.directory)
    await redis.delete(keys.suggestion(suggestion_id))
    return web.json_response({"ok": True, "file": path})


async def accept_phrasing(request: web.Request) -> web.Response:
    """Add the customer's question (as the editor edited it) to an existing entry."""
    from bot.kb.edit import add_phrasing
    from bot.language import guess_language

    body = await _body(request)
    entry_id = _text_field(body, "entry", 200)
    text = body.get("text")

    def change(store: KnowledgeBaseStore, item: dict[str, str]) -> Path:
        phrasing = text.strip() if isinstance(text, str) and text.strip() else item["question"]
        language = guess_language(phrasing, default=item.get("language") or "en")
        return add_phrasing(store.directory, store.kb, entry_id, phrasing, language)

    return await _resolve(request, change)


async def accept_entry(request: web.Request) -> web.Response:
    """Write a new entry from the suggestion: the question, the agent's answer as edited."""
    from bot.kb.edit import add_entry
    from bot.language import guess_language

    body = await _body(request)
    entry_id = _text_field(body, "id", 100)
    question = _text_field(body, "question", MAX_QUESTION)
    answer = _text_field(body, "answer", MAX_ANSWER)
    near = body.get("near") if isinstance(body.get("near"), str) else None
    tags = [t for t in body.get("tags") or [] if isinstance(t, str)][:5]

    def change(store: KnowledgeBaseStore, item: dict[str, str]) -> Path:
        language = guess_language(question, default=item.get("language") or "en")
        return add_entry(store.directory, store.kb, entry_id, question, answer, language, tags, near=near)

    return await _resolve(request, change)


async def dismiss(request: web.Request) -> web.Response:
    return await _resolve(request, None)


def add_routes(app: web.Application) -> None:
    app[EDITOR_STORE] = {}
    app.router.add_get("/editor", editor_page)
    app.router.add_post("/api/editor/try", try_it)
    app.router.add_get("/api/editor/unanswered", unanswered_groups)
    app.router.add_get("/api/editor/suggestions", suggestions)
    app.router.add_post("/api/editor/suggestions/{sid}/phrasing", accept_phrasing)
    app.router.add_post("/api/editor/suggestions/{sid}/entry", accept_entry)
    app.router.add_post("/api/editor/suggestions/{sid}/dismiss", dismiss)
    app.router.add_post("/api/chats/{id}/suggest", suggest)
