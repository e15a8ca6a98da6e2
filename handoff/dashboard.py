"""The team lead's dashboard: figures (``docs/kpis.md``), the queue now, and a CSV export.

Behind the console's login; every route needs the ``lead`` role (``app.required_role``).
Days are the deployment's (the business-hours time zone), so "today" is the team's today.
The facts are read once and then only what was written since; they are folded again only
when new ones came, so a dashboard left open refreshes every minute at little cost.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.business_hours import load_business_hours
from bot.teams import load_teams
from handoff import kpis
from handoff.kpi_log import read_facts

DASHBOARD_CACHE = web.AppKey("dashboard_cache", dict)
FOLD_TTL = 60.0  # seconds folded conversations are reused while no new fact came
MAX_DAYS = 366
DEFAULT_DAYS = 30
CHART_JS = Path(__file__).parent / "console" / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"


def _services(app: web.Application):
    from handoff.app import SERVICES

    return app[SERVICES]


def _zone(app: web.Application):
    cache = app[DASHBOARD_CACHE]
    if "zone" not in cache:
        cache["zone"] = load_business_hours(_services(app).settings.business_hours_file).timezone
    return cache["zone"]


def _day(text: str | None, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "dates are YYYY-MM-DD"}', content_type="application/json") from None


def _range(request: web.Request) -> tuple[date, date]:
    today = datetime.now(_zone(request.app)).date()
    last = _day(request.query.get("to"), today)
    days = request.query.get("days") or str(DEFAULT_DAYS)
    if not days.isdigit() or not 1 <= int(days) <= MAX_DAYS:
        raise web.HTTPBadRequest(text=f'{{"error": "days is 1 to {MAX_DAYS}"}}', content_type="application/json")
    first = _day(request.query.get("from"), last - timedelta(days=int(days) - 1))
    if first > last or (last - first).days >= MAX_DAYS:
        raise web.HTTPBadRequest(
            text=f'{{"error": "from must not be after to, and a range is at most {MAX_DAYS} days"}}',
            content_type="application/json",
        )
    return first, last


async def conversations(app: web.Application, first: date) -> list[kpis.Conversation]:
    """Every conversation from a week before ``first`` on (repeats look back a week).

    The facts read are kept, and each request reads only those written since (one XRANGE
    from the last id), so a dashboard left open does not re-read months of facts a minute;
    the folding is shared by requests within ``FOLD_TTL``.
    """
    cache = app[DASHBOARD_CACHE]
    zone = _zone(app)
    since = datetime(first.year, first.month, first.day, tzinfo=zone).timestamp() - kpis.REPEAT_WINDOW_S
    async with cache.setdefault("lock", asyncio.Lock()):
        held = cache.get("facts")
        redis = _services(app).redis
        if held is None or held["since"] > since:
            facts, last = await read_facts(redis, since)
            held = cache["facts"] = {"since": since, "facts": facts, "last": last, "folded": None, "at": 0.0}
        else:
            new, held["last"] = await read_facts(redis, since, after=held["last"])
            if new:
                held["facts"].extend(new)
                held["folded"] = None
            if since - held["since"] > 86400:  # the window moved on: forget what fell out of it
                held["facts"] = [f for f in held["facts"] if float(f.get("t") or 0) >= since]
                held["since"], held["folded"] = since, None
        if held["folded"] is None or time.monotonic() - held["at"] > FOLD_TTL:
            held["folded"] = await asyncio.to_thread(kpis.fold, list(held["facts"]))
            held["at"] = time.monotonic()
        return held["folded"]


def _teams(app: web.Application):
    cache = app[DASHBOARD_CACHE]
    if "teams" not in cache:
        cache["teams"] = load_teams(_services(app).settings.teams_file)
    return cache["teams"]


async def dashboard_page(request: web.Request) -> web.FileResponse:
    from handoff.app import STATIC

    return web.FileResponse(STATIC / "dashboard.html")


async def chart_library(request: web.Request) -> web.FileResponse:
    """Chart.js as installed from the console's lock file (``make setup``)."""
    if not CHART_JS.exists():
        raise web.HTTPNotFound(text="Chart.js is not installed: run make setup")
    return web.FileResponse(CHART_JS, headers={"Content-Type": "text/javascript; charset=utf-8"})


async def get_kpis(request: web.Request) -> web.Response:
    """``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (default: the last 30 days): the range's figures,
    and today's."""
    first, last = _range(request)
    zone = _zone(request.app)
    today = datetime.now(zone).date()
    folded = await conversations(request.app, min(first, today))
    body: dict[str, Any] = {
        "range": kpis.report(folded, first, last, zone),
        "today": kpis.report(folded, today, today, zone),
        "teams": {name: team.label for name, team in _teams(request.app).teams.items()},
        "comments": _comments(folded, first, last, zone),
    }
    return web.json_response(body)


def _comments(folded: list[kpis.Conversation], first: date, last: date, zone) -> list[dict[str, Any]]:
    out = [
        {"at": c.comment_at, "rating": c.rating, "agent": c.agent, "text": c.comment}
        for c in folded
        if c.comment and first <= kpis.day_of(c.started, zone) <= last
    ]
    return sorted(out, key=lambda item: item["at"], reverse=True)[:100]


async def get_csv(request: web.Request) -> web.Response:
    first, last = _range(request)
    zone = _zone(request.app)
    folded = await conversations(request.app, first)
    inside = [c for c in folded if first <= kpis.day_of(c.started, zone) <= last]
    return web.Response(
        text=kpis.to_csv(inside, zone),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="conversations-{first}-{last}.csv"'},
    )


async def get_live(request: web.Request) -> web.Response:
    """The queue now: how many wait and for how long, who is online and how loaded."""
    services = _services(request.app)
    now = time.time()
    waiting = await services.queue.waiting(now)
    agents = await services.agents.all()
    teams = _teams(request.app)
    by_team: dict[str, int] = {}
    for chat in waiting:
        team = chat.card.team or teams.default
        by_team[team] = by_team.get(team, 0) + 1
    return web.json_response(
        {
            "waiting": len(waiting),
            "longest_wait_s": round(max((now - c.created_at for c in waiting), default=0.0), 1),
            "waiting_by_team": by_team,
            "agents": [
                {"name": a.name, "status": a.status, "chats": a.active, "capacity": a.capacity}
                for a in sorted(agents, key=lambda a: a.name)
                if "agent" in a.roles
            ],
        }
    )


def add_routes(app: web.Application) -> None:
    app[DASHBOARD_CACHE] = {}
    app.router.add_get("/dashboard", dashboard_page)
    app.router.add_get("/api/kpis", get_kpis)
    app.router.add_get("/api/kpis.csv", get_csv)
    app.router.add_get("/api/live", get_live)
    app.router.add_get("/vendor/chart.js", chart_library)
