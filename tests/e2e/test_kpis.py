"""The team lead's figures through the real stack.

* A recorded day (``tests/kpi_day.py``) is replayed into Rasa through its HTTP API, the way
  agents' replies are appended; the events flow through the broker, the event stream and
  the handoff service's KPI reader, and ``/api/kpis`` must give the figures worked out by
  hand.
* Live conversations show that the real bot writes the events those figures read: a
  question answered, a handoff with its reason and team, an agent who joins, writes and
  closes, a typed "4" with a comment after it.
* Only a lead reaches the figures; the CSV is a spreadsheet's text, never its formulas.
* The dashboard in headless Chromium, on a laptop and on a phone.

Set ``SAVE_SCREENSHOTS=1`` (``make screenshots``) to refresh ``docs/screenshots/dashboard.png``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
from urllib.parse import quote

import pytest
import requests
from playwright.async_api import async_playwright

from tests.conftest import ROOT
from tests.e2e.clients import Agent
from tests.e2e.conftest import Stack, new_sender, wait_for
from tests.e2e.test_console_browser import CHROMIUM_ARGS, chromium
from tests.kpi_day import DAY, EXPECTED, EXPECTED_BY, EXPECTED_COMMENT, day_events

PASSWORD = "lead test password"


@pytest.fixture(scope="module")
def accounts(stack: Stack) -> None:
    stack.add_agent("lena", PASSWORD, roles="lead")
    stack.add_agent("kai", PASSWORD, roles="agent")


def login(stack: Stack, name: str) -> requests.Session:
    """A console session, logged in once (logins are rate-limited per address)."""
    http = requests.Session()
    response = http.post(f"{stack.console_url}/login", data={"name": name, "password": PASSWORD}, timeout=30)
    assert response.status_code == 200 and "/login" not in response.url, response.text[:300]
    return http


@pytest.fixture(scope="module")
def lead(stack: Stack, accounts: None) -> requests.Session:
    return login(stack, "lena")


def kpis(stack: Stack, lead: requests.Session, query: str) -> dict:
    response = lead.get(f"{stack.console_url}/api/kpis?{query}", timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def replay(stack: Stack) -> None:
    for conversation, events in day_events().items():
        url = f"{stack.settings.rasa_url}/conversations/{quote(conversation, safe=':')}/tracker/events"
        response = requests.post(url, params={"token": stack.token}, json=events, timeout=60)
        assert response.status_code == 200, response.text


def test_a_replayed_day_gives_the_hand_computed_figures(stack: Stack, lead: requests.Session) -> None:
    replay(stack)

    def figures() -> dict | None:
        got = kpis(stack, lead, f"from={DAY}&to={DAY}")["range"]
        return got if got["summary"]["conversations"] == EXPECTED["conversations"] else None

    got = wait_for(figures, timeout=30, interval=0.5)
    # The reader may still be behind on the last conversations: wait for the whole day.
    got = wait_for(lambda: (g := figures()) and g["summary"] == EXPECTED and g, timeout=30, interval=0.5)
    assert got["summary"] == EXPECTED
    for key, counts in EXPECTED_BY.items():
        assert {name: f["conversations"] for name, f in got[f"by_{key}"].items()} == counts, key
    body = kpis(stack, lead, f"from={DAY}&to={DAY}")
    assert EXPECTED_COMMENT in [{k: c[k] for k in ("rating", "agent", "text")} for c in body["comments"]]
    # The next day holds Erin's second, angry conversation only; a range sums both days.
    both = kpis(stack, lead, f"from={DAY}&to=2026-11-18")["range"]
    assert both["by_day"]["2026-11-18"]["conversations"] == 1
    assert both["summary"]["conversations"] == EXPECTED["conversations"] + 1


def test_the_real_bot_writes_what_the_figures_read(stack: Stack, lead: requests.Session) -> None:
    """Answered, handed off (reason and team on the card), joined, answered by a person,
    closed, rated by typing "4", then a comment: one row of the CSV says all of it."""
    sender = new_sender()
    conversation = f"rest:{sender}"
    assert stack.say(sender, "how do I pay my bill")
    reply = stack.say(sender, "I want to talk to a person")
    assert any("support team" in (m.get("text") or "").lower() for m in reply), reply

    async def agent_part() -> None:
        async with Agent(stack.console_url, "kai", PASSWORD) as kai:
            status, chat = await kai.get(f"/api/chats/{conversation}")
            assert status == 200 and chat["card"]["team"] == "billing", chat["card"]
            assert (await kai.post(f"/api/chats/{conversation}/claim"))[0] == 200
            assert (await kai.post(f"/api/chats/{conversation}/reply", {"text": "Hello, let me check."}))[0] == 200
            assert (await kai.post(f"/api/chats/{conversation}/close"))[0] == 200

    asyncio.run(agent_part())
    wait_for(lambda: any(e.get("event") == "resume" for e in stack.tracker(conversation)["events"]), timeout=10)
    thanks = stack.say(sender, "4")
    assert len(thanks) == 1 and "feedback" in thanks[0]["text"].lower(), thanks  # and no "didn't get that"
    noted = stack.say(sender, "quick and clear, but the wait was long")
    assert len(noted) == 1 and "pass it on" in noted[0]["text"].lower(), noted

    def csv_row() -> dict | None:
        response = lead.get(f"{stack.console_url}/api/kpis.csv?days=1", timeout=60)
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
        mine = [r for r in csv.DictReader(io.StringIO(response.text)) if r["conversation"] == conversation]
        return mine[0] if mine and mine[0]["rating"] else None

    row = wait_for(csv_row, timeout=20, interval=0.5)
    assert row["channel"] == "rest" and row["language"] == "en"
    assert row["handed_off"] == "yes" and row["reason"] == "asked_for_human" and row["team"] == "billing"
    assert row["agent"] == "kai" and row["ended"] == "closed" and row["rating"] == "4"
    assert float(row["time_to_agent_s"]) >= 0 and float(row["first_response_s"]) >= float(row["time_to_agent_s"])
    assert row["questions"] == "1" and row["unanswered"] == "0"
    body = kpis(stack, lead, "days=1")
    assert {"rating": 4, "agent": "kai", "text": "quick and clear, but the wait was long"} in [
        {k: c[k] for k in ("rating", "agent", "text")} for c in body["comments"]
    ]


def test_only_a_lead_reaches_the_figures(stack: Stack, lead: requests.Session) -> None:
    agent = login(stack, "kai")
    for name, http, allowed in (("kai", agent, False), ("lena", lead, True)):
        for path in ("/dashboard", "/api/kpis", "/api/kpis.csv", "/api/live", "/vendor/chart.js"):
            response = http.get(f"{stack.console_url}{path}", allow_redirects=False, timeout=60)
            if allowed:
                assert response.status_code == 200, (name, path, response.status_code)
            else:
                assert response.status_code in (302, 403), (name, path, response.status_code)
        response = http.get(f"{stack.console_url}/api/queue", allow_redirects=False, timeout=30)
        assert (response.status_code == 200) != allowed, (name, response.status_code)  # a lead is not an agent
    assert requests.get(f"{stack.console_url}/api/kpis", allow_redirects=False, timeout=30).status_code == 401


@pytest.mark.parametrize("query", ["from=yesterday", "from=2026-12-01&to=2026-01-01", "days=0", "days=9999", "days=x"])
def test_a_bad_range_is_a_clear_400(stack: Stack, lead: requests.Session, query: str) -> None:
    response = lead.get(f"{stack.console_url}/api/kpis?{query}", timeout=30)
    assert response.status_code == 400 and "error" in response.json()


HOSTILE = '<img src=x onerror="document.title=1">=cmd|" /C calc"!A0'


@pytest.mark.parametrize("viewport", [(1280, 900), (375, 740)])
def test_the_dashboard_in_chromium(stack: Stack, accounts: None, viewport: tuple[int, int]) -> None:
    """Figures, charts and a hostile comment shown as text; nothing off-screen on a phone."""
    phone = viewport[0] < 600
    if phone:  # the laptop run keeps the README's screenshot free of it
        sender = new_sender()
        conversation = f"rest:{sender}"
        stack.say(sender, "I want to talk to a person")

        async def close_and_rate() -> None:
            async with Agent(stack.console_url, "kai", PASSWORD) as kai:
                assert (await kai.post(f"/api/chats/{conversation}/claim"))[0] == 200
                assert (await kai.post(f"/api/chats/{conversation}/close"))[0] == 200

        asyncio.run(close_and_rate())
        stack.say(sender, f"3 - {HOSTILE}")

    async def run() -> None:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            width, height = viewport
            page = await browser.new_page(viewport={"width": width, "height": height}, is_mobile=width < 600)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{stack.console_url}/login")
            await page.fill("input[name=name]", "lena")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url("**/dashboard")
            await page.get_by_test_id("range-conversations-value").wait_for()
            if phone:
                await page.get_by_test_id("comment").filter(has_text="calc").first.wait_for(timeout=20_000)
                assert await page.title() != "1"  # the comment's markup never ran
                assert await page.locator("img[src=x]").count() == 0
                text = await page.get_by_test_id("comment").filter(has_text="calc").first.text_content()
                assert HOSTILE in text
            for chart in ("chart-days", "chart-reasons", "chart-csat", "chart-wait"):
                drawn = await page.evaluate(f"!!Chart.getChart(document.getElementById('{chart}'))")
                assert drawn, chart
            live = await page.get_by_test_id("live-waiting-value").text_content()
            assert live.strip().isdigit()
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the page is {overflow}px wider than a {width}px screen"
            assert not errors, errors
            if os.environ.get("SAVE_SCREENSHOTS") and not phone:
                await page.screenshot(path=str(ROOT / "docs" / "screenshots" / "dashboard.png"), full_page=True)
            await browser.close()

    asyncio.run(run())
