"""Who gets which chat: teams and languages as skills, offers that move on, chats that come
back when their agent leaves, and transfers.

* **Offers.** A waiting chat is offered to one agent who is online, has a free slot and the
  skills (its team, ``data/console/teams.yml``, and the customer's language; an agent with
  no teams or no languages listed takes any), the least loaded first. Their console rings
  and shows it on top. Not taken within ``ROUTING_OFFER_SECONDS``, it is offered to the next
  one; when everyone had a go it starts again. Anyone with the skills may still take a
  waiting chat from the list; someone without them only when nobody online has them.
* **Coming back.** The chats of an agent who logs out or sets themselves away or offline
  wait again, first in line; so do those of an agent whose console has been closed for
  ``AWAY_RETURN_SECONDS`` (a reload is not leaving).
* **Transfer.** An agent hands a chat to a team or a colleague with a note for them; the
  chat goes first in line (offered to the colleague), the customer is told in a sentence
  and asked nothing again: the card, the transcript and the notes go with it.

The router runs in every handoff-service replica; offers are compare-and-set in Redis, so
two replicas never offer one chat to two agents at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from aiohttp import web

from bot.messages import say
from bot.teams import Teams, load_teams
from handoff.agents import Agent
from handoff.queue import WAITING, Chat

log = logging.getLogger(__name__)

DEFAULT_OFFER_SECONDS = 30.0
AWAY_RETURN_SECONDS = 60.0
ROUTE_EVERY = 2.0
MAX_NOTE = 2000

TEAMS = web.AppKey("teams", Teams)


def _services(app: web.Application):
    from handoff.app import SERVICES

    return app[SERVICES]


def teams_of(app: web.Application) -> Teams:
    return app[TEAMS]


def team_of(chat: Chat, teams: Teams) -> str:
    return chat.team or teams.default


def takes_chats(agent: Agent) -> bool:
    return agent.status == "online" and "agent" in agent.roles


def pick_agent(
    chat: Chat, agents: Sequence[Agent], teams: Teams, held: dict[str, int], skip: Iterable[str] = ()
) -> Agent | None:
    """The agent to offer ``chat`` to: online, a free slot counting offers they hold, the
    skills; the least loaded first. ``None`` when nobody fits."""
    skip = set(skip)
    team, language = team_of(chat, teams), chat.card.language
    fits = [
        a
        for a in agents
        if takes_chats(a)
        and a.name not in skip
        and a.active + held.get(a.name, 0) < a.capacity
        and a.covers(team, language)
    ]
    return min(fits, key=lambda a: ((a.active + held.get(a.name, 0)) / a.capacity, a.active, a.name), default=None)


def may_take(agent: Agent, chat: Chat, agents: Sequence[Agent], teams: Teams) -> bool:
    """Whether ``agent`` may take ``chat`` from the list: they have the skills, it was offered
    to them, or nobody online has the skills (a customer is never stranded)."""
    team, language = team_of(chat, teams), chat.card.language
    if agent.covers(team, language) or chat.offered_to == agent.name:
        return True
    return not any(takes_chats(a) and a.covers(team, language) for a in agents)


def offer_is_live(chat: Chat, agents: dict[str, Agent], now: float, offer_seconds: float) -> bool:
    agent = agents.get(chat.offered_to or "")
    return bool(
        agent is not None
        and takes_chats(agent)
        and agent.active < agent.capacity
        and now - chat.offered_at < offer_seconds
    )


async def route(app: web.Application, now: float | None = None) -> int:
    """One pass: bring back the chats of agents gone too long, and offer each waiting chat
    whose offer is not live to the next agent. Returns how many offers were made."""
    from handoff.live import queue_changed

    services = _services(app)
    now = time.time() if now is None else now
    agents = await services.agents.all()
    came_back = 0
    for agent in agents:
        if agent.away_since and agent.active and now - agent.away_since > AWAY_RETURN_SECONDS:
            came_back += await services.queue.return_chats_of(agent.name)
            log.info(
                "the console of %s was closed for over %.0f s: their chats wait again",
                agent.name,
                now - agent.away_since,
            )
    if came_back:
        agents = await services.agents.all()
    by_name = {a.name: a for a in agents}
    teams = teams_of(app)
    offer_seconds = services.settings.routing_offer_seconds
    waiting = await services.queue.waiting(now)
    held: dict[str, int] = {}
    for chat in waiting:
        if chat.offered_to and offer_is_live(chat, by_name, now, offer_seconds):
            held[chat.offered_to] = held.get(chat.offered_to, 0) + 1
    offers = 0
    for chat in waiting:
        if chat.offered_to and offer_is_live(chat, by_name, now, offer_seconds):
            continue
        agent = pick_agent(chat, agents, teams, held, skip=chat.offered)
        if agent is None and chat.offered:
            agent = pick_agent(chat, agents, teams, held)  # everyone had a go: round again
        if agent is None or not await services.queue.offer(chat.conversation_id, agent.name, chat.offered_at, now):
            continue
        held[agent.name] = held.get(agent.name, 0) + 1
        offers += 1
        await services.hub.send_to_agent(agent.name, {"type": "offer", "conversation_id": chat.conversation_id})
    if offers or came_back:
        await queue_changed(app)
    return offers


async def route_loop(app: web.Application, every: float = ROUTE_EVERY) -> None:
    """The router, every ``every`` seconds and whenever :func:`poke` is called."""
    wake = app[ROUTER_WAKE]
    while True:
        try:
            await route(app)
        except Exception as exc:  # Redis down or a bug: routing resumes on the next pass
            log.warning("routing pass failed: %r", exc)
        wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(wake.wait(), every)


ROUTER_WAKE = web.AppKey("router_wake", asyncio.Event)


def poke(app: web.Application) -> None:
    """Route now: a chat started waiting, an agent came online or freed a slot."""
    if ROUTER_WAKE in app:
        app[ROUTER_WAKE].set()


async def transfer(request: web.Request) -> web.Response:
    """``{"team": name}`` or ``{"agent": name}``, and a ``note`` for whoever takes it."""
    from handoff.app import AGENT, _chat_changed, _json, _owned
    from handoff.notes import add_note

    chat = await _owned(request)
    if isinstance(chat, web.Response):
        return chat
    body = await _json(request)
    services, me = _services(request.app), request[AGENT]
    teams = teams_of(request.app)
    team, colleague = body.get("team"), body.get("agent")
    note = " ".join(str(body.get("note") or "").split())[:MAX_NOTE]
    if bool(team) == bool(colleague) or not isinstance(team or colleague, str):
        return web.json_response({"error": "name either a team or a colleague"}, status=400)
    if team and team not in teams.teams:
        return web.json_response({"error": f"no team {team!r}; teams are {', '.join(teams.teams)}"}, status=400)
    if colleague:
        other = await services.agents.get(colleague)
        if other is None or "agent" not in other.roles or colleague == me:
            return web.json_response({"error": f"{colleague!r} is not a colleague who takes chats"}, status=400)
    label = teams.label(team) if team else colleague
    if not await services.queue.transfer(chat.conversation_id, me, team, colleague):
        return web.json_response({"error": "this chat is not assigned to you"}, status=409)
    await add_note(services.redis, chat.conversation_id, me, f"Transferred to {label}. {note}".strip())
    language = chat.card.language
    try:
        await services.rasa.say(chat.conversation_id, say("transferred", language), agent=me)
    except Exception as exc:  # the transfer stands; the customer hears the new agent's greeting
        log.warning("transfer note to the customer of %s not sent: %s", chat.conversation_id, exc)
    if colleague:
        await services.hub.send_to_agent(colleague, {"type": "offer", "conversation_id": chat.conversation_id})
    await _chat_changed(request.app, chat.conversation_id, WAITING, None)
    poke(request.app)
    return web.json_response({"ok": True})


async def get_teams(request: web.Request) -> web.Response:
    """The teams and the colleagues a chat can be transferred to."""
    services = _services(request.app)
    teams = teams_of(request.app)
    agents = await services.agents.all()
    return web.json_response(
        {
            "teams": [{"name": t.name, "label": t.label} for t in teams.teams.values()],
            "agents": [
                {"name": a.name, "status": a.status, "teams": list(a.teams), "languages": list(a.languages)}
                for a in agents
                if "agent" in a.roles
            ],
        }
    )


def add_routes(app: web.Application, teams_file: str | Path) -> None:
    app[TEAMS] = load_teams(teams_file)  # a broken file stops the service at start, with its reason
    app[ROUTER_WAKE] = asyncio.Event()
    app.router.add_post("/api/chats/{id}/transfer", transfer)
    app.router.add_get("/api/teams", get_teams)
