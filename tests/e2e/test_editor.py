"""The editors' page through the real stack: roles on every console route, an unanswered
customer question showing up in its group, and "try it", in headless Chromium.

Set ``SAVE_SCREENSHOTS=1`` (``make screenshots``) to refresh ``docs/screenshots/editor.png``."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright

from tests.conftest import ROOT
from tests.e2e.clients import Agent
from tests.e2e.conftest import Stack, new_sender, wait_for
from tests.e2e.test_console_browser import CHROMIUM_ARGS, chromium

PASSWORD = "editor test password"
# Nothing in the demo knowledge base is about this; the bot says it did not understand.
MISSED = "can I rent a projector for my garden party from you"
MISSED_AGAIN = "Can I rent a projector for my garden party from you?"
HOSTILE = '<img src=x onerror=alert(1)> can my invoice show the name of my cat? <script>alert("x")</script>'


@pytest.fixture(scope="module")
def accounts(stack: Stack) -> dict[str, str]:
    stack.add_agent("ann", PASSWORD, roles="agent")
    stack.add_agent("ed", PASSWORD, roles="editor")
    stack.add_agent("bea", PASSWORD, roles="agent,editor")
    return {"agent": "ann", "editor": "ed", "both": "bea"}


async def login(console_url: str, name: str) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(f"{console_url}/login", data={"name": name, "password": PASSWORD}, allow_redirects=False) as r:
        assert r.status == 302, await r.text()
    return http


AGENT_ROUTES = [
    ("GET", "/api/queue"),
    ("GET", "/api/canned"),
    ("GET", "/api/chats/rest:nobody"),
    ("POST", "/api/chats/rest:nobody/claim"),
    ("POST", "/api/chats/rest:nobody/reply"),
    ("POST", "/api/chats/rest:nobody/handback"),
    ("POST", "/api/chats/rest:nobody/close"),
    ("POST", "/api/me/status"),
    ("GET", "/ws"),
]
EDITOR_ROUTES = [("GET", "/api/editor/unanswered"), ("POST", "/api/editor/try"), ("GET", "/static/editor.js")]


def test_each_role_reaches_only_its_own_routes(stack: Stack, accounts: dict[str, str]) -> None:
    async def status(http: aiohttp.ClientSession, method: str, path: str) -> int:
        headers = {"X-Requested-With": "console"}
        body = {"text": "hello"} if path.endswith("/try") else {}
        kwargs = {"json": body, "headers": headers} if method == "POST" else {}
        async with http.request(method, f"{stack.console_url}{path}", allow_redirects=False, **kwargs) as response:
            return response.status

    async def run() -> None:
        for role, name in accounts.items():
            http = await login(stack.console_url, name)
            try:
                for method, path in AGENT_ROUTES:
                    got = await status(http, method, path)
                    if role == "editor":
                        assert got == 403, (name, method, path, got)
                    else:
                        assert got != 403, (name, method, path, got)
                for method, path in EDITOR_ROUTES:
                    got = await status(http, method, path)
                    if role == "agent":
                        assert got == 403, (name, method, path, got)
                    else:
                        assert got == 200, (name, method, path, got)
                # The pages: each lands where their role lets them work.
                async with http.get(f"{stack.console_url}/", allow_redirects=False) as page:
                    assert (page.status, page.headers.get("Location")) == (
                        (302, "/editor") if role == "editor" else (200, None)
                    )
                async with http.get(f"{stack.console_url}/editor", allow_redirects=False) as page:
                    assert page.status == (302 if role == "agent" else 200)
                async with http.get(f"{stack.console_url}/api/me") as me:
                    roles = {"agent": ["agent"], "editor": ["editor"], "both": ["agent", "editor"]}[role]
                    assert (await me.json())["roles"] == roles
            finally:
                await http.close()

    asyncio.run(run())


def test_try_it_says_what_the_bot_would_answer_and_why(stack: Stack, accounts: dict[str, str]) -> None:
    async def run() -> dict:
        async with Agent(stack.console_url, accounts["both"], PASSWORD) as editor:
            status, bad = await editor.post("/api/editor/try", {"text": "   "})
            assert status == 400 and bad["error"]
            status, result = await editor.post("/api/editor/try", {"text": "how do I pay my bill?"})
            assert status == 200, result
            return result

    result = asyncio.run(run())
    assert (result["decision"], result["id"]) == ("answer", "billing-pay-bill")
    assert re.search(r"billing\.yml:\d+$", result["candidates"][0]["source"]), result["candidates"][0]
    assert "Pay now" in result["replies"][0]["text"]


def test_an_unanswered_question_shows_up_in_its_group_on_the_editor_page(
    stack: Stack, accounts: dict[str, str], tmp_path: Path
) -> None:
    for text in (MISSED, MISSED_AGAIN):
        replies = stack.say(new_sender(), text)
        assert "didn't understand" in " ".join(r.get("text", "") for r in replies), replies
    hostile_sender = new_sender()
    stack.say(hostile_sender, HOSTILE)
    stack.say(hostile_sender, "ok")  # a "did you mean" left unpicked counts too
    shot = ROOT / "docs" / "screenshots" / "editor.png" if os.environ.get("SAVE_SCREENSHOTS") else tmp_path / "e.png"

    async def scenario() -> None:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            dialogs: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("dialog", lambda dialog: dialogs.append(dialog.message))
            await page.goto(f"{stack.console_url}/login")
            await page.get_by_test_id("login-name").fill(accounts["editor"])
            await page.get_by_test_id("login-password").fill(PASSWORD)
            await page.get_by_test_id("login-submit").click()
            await page.wait_for_url(f"{stack.console_url}/editor")  # an editor lands on their page

            await page.get_by_test_id("missed-refresh").click()
            group = page.get_by_test_id("missed-group").filter(has_text="projector")
            await group.first.wait_for(timeout=30_000)
            assert await group.count() == 1  # both wordings in one group
            assert (await group.first.locator("td").first.inner_text()).startswith("2")
            assert "didn't understand 2" in await group.first.inner_text()
            # A customer's markup is shown as the text they typed, never run.
            hostile = page.get_by_test_id("missed-example").filter(has_text="name of my cat")
            await hostile.first.wait_for(timeout=30_000)
            assert await hostile.first.inner_text() == HOSTILE
            assert await page.locator("#missed-rows img, #missed-rows script").count() == 0

            await page.get_by_test_id("try-input").fill("my internet is not working")
            await page.get_by_test_id("try-button").click()
            decision = page.get_by_test_id("try-decision")
            await decision.wait_for(timeout=30_000)
            assert await decision.get_attribute("data-decision") == "answer"
            assert "outages-no-internet" in await page.get_by_test_id("try-candidates").inner_text()
            assert errors == [] and dialogs == []
            await page.screenshot(path=str(shot), full_page=True)
            await browser.close()

    asyncio.run(asyncio.wait_for(scenario(), 240))


def test_an_agents_answer_accepted_by_an_editor_is_then_answered_by_the_bot(
    stack: Stack, accounts: dict[str, str]
) -> None:
    question = "do you lend projectors for garden parties"
    answer = "We don't lend or rent out projectors, sorry: we offer broadband, mobile plans and devices."
    sender = new_sender()
    first = stack.say(sender, question)
    assert answer not in " ".join(r.get("text", "") for r in first), first
    stack.say(sender, "I want to talk to a person")
    conversation = f"rest:{sender}"

    async def scenario() -> None:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            errors: list[str] = []
            # The agent (who is also an editor) answers and closes the chat, then suggests it.
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            await page.goto(f"{stack.console_url}/login")
            await page.get_by_test_id("login-name").fill(accounts["both"])
            await page.get_by_test_id("login-password").fill(PASSWORD)
            await page.get_by_test_id("login-submit").click()
            await page.wait_for_url(f"{stack.console_url}/")
            item = page.locator(f'[data-testid="queue-item"][data-conversation-id="{conversation}"]')
            await item.wait_for(timeout=30_000)
            await item.get_by_test_id("take-button").click()
            await page.get_by_test_id("reply-input").fill(answer)
            await page.get_by_test_id("reply-send").click()
            await page.get_by_test_id("transcript").get_by_text(answer).wait_for(timeout=30_000)
            await page.get_by_test_id("close-button").click()
            panel = page.get_by_test_id("suggest-panel")
            await panel.wait_for(state="visible", timeout=30_000)
            assert await page.get_by_test_id("suggest-question").input_value() == question
            assert await page.get_by_test_id("suggest-answer").input_value() == answer
            await page.get_by_test_id("suggest-send").click()
            await page.get_by_test_id("suggest-status").filter(has_text="Sent to the editors").wait_for()

            # Nothing reaches customers before an editor says so.
            replies = await asyncio.to_thread(stack.say, new_sender(), question)
            assert answer not in " ".join(r.get("text", "") for r in replies)

            # The editor (another account) turns it into a new entry.
            editor = await browser.new_page(viewport={"width": 1280, "height": 900})
            editor.on("pageerror", lambda error: errors.append(str(error)))
            await editor.goto(f"{stack.console_url}/login")
            await editor.get_by_test_id("login-name").fill(accounts["editor"])
            await editor.get_by_test_id("login-password").fill(PASSWORD)
            await editor.get_by_test_id("login-submit").click()
            await editor.wait_for_url(f"{stack.console_url}/editor")
            card = editor.get_by_test_id("suggestion").filter(has_text=question)
            await card.wait_for(timeout=30_000)
            await card.get_by_test_id("suggestion-new-id").fill("devices-projector-lending")
            await card.get_by_test_id("suggestion-add-entry").click()
            await card.get_by_test_id("suggestion-status").filter(has_text="live now").wait_for(timeout=60_000)
            assert errors == []
            await browser.close()

    asyncio.run(asyncio.wait_for(scenario(), 300))

    def answered() -> bool:
        replies = stack.say(new_sender(), question)
        return answer in " ".join(r.get("text", "") for r in replies)

    assert wait_for(answered, timeout=30)


def test_suggestions_are_checked_and_only_the_agent_of_the_chat_can_make_one(
    stack: Stack, accounts: dict[str, str]
) -> None:
    sender = new_sender()
    stack.say(sender, "I want to talk to a person")
    conversation = f"rest:{sender}"

    async def run() -> None:
        async with (
            Agent(stack.console_url, accounts["both"], PASSWORD) as bea,
            Agent(stack.console_url, accounts["agent"], PASSWORD) as ann,
        ):
            assert (await bea.post(f"/api/chats/{conversation}/claim"))[0] == 200
            assert (await bea.post(f"/api/chats/{conversation}/reply", {"text": "We sell no pianos.", "id": "r1"}))[0]
            assert (await bea.post(f"/api/chats/{conversation}/close"))[0] == 200
            status, refused = await ann.post(f"/api/chats/{conversation}/suggest", {"question": "q", "answer": "a"})
            assert status == 403, refused  # not ann's chat
            status, _ = await bea.post(
                f"/api/chats/{conversation}/suggest", {"question": "pianos?", "answer": "x" * 2001}
            )
            assert status == 400
            status, made = await bea.post(
                f"/api/chats/{conversation}/suggest", {"question": "<b>do you sell pianos?</b>", "answer": "No."}
            )
            assert status == 201
            sid = made["id"]
            # A change that would break the knowledge base is refused and the suggestion stays.
            status, bad = await bea.post(f"/api/editor/suggestions/{sid}/phrasing", {"entry": "no-such-entry"})
            assert status == 400 and "no entry" in bad["error"]
            _, listed = await bea.get("/api/editor/suggestions")
            assert sid in [s["id"] for s in listed["suggestions"]]
            assert (await bea.post(f"/api/editor/suggestions/{sid}/dismiss"))[0] == 200
            assert (await bea.post(f"/api/editor/suggestions/{sid}/dismiss"))[0] == 404
            _, listed = await bea.get("/api/editor/suggestions")
            assert sid not in [s["id"] for s in listed["suggestions"]]

    asyncio.run(run())


def test_the_unanswered_command_reads_the_live_event_stream(stack: Stack) -> None:
    import json
    import subprocess
    import sys

    from bot.processes import service_env

    stack.say(new_sender(), "can I hire a karaoke machine from Brightline for a wedding")
    done = subprocess.run(
        [sys.executable, "-m", "bot.kb", "unanswered", "--json", "--limit", "200"],
        env={**os.environ, **service_env(stack.settings)},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    examples = [text for group in json.loads(done.stdout) for text in group["examples"]]
    assert any("karaoke" in text for text in examples), examples
