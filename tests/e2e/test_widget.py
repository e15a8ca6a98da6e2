"""The website chat widget on the demo page, in a real browser (Debian's headless Chromium
driven by Playwright) against the real stack: Rasa's webchat channel, the action server,
Redis and the handoff service.

Set ``SAVE_SCREENSHOTS=1`` (``make screenshots``) to refresh ``docs/screenshots/widget.png``
for the README; otherwise the screenshot goes to the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Locator, Page, async_playwright

from handoff import keys
from tests.conftest import ROOT
from tests.e2e.clients import Agent
from tests.e2e.conftest import Stack
from tests.e2e.test_console_browser import CHROMIUM_ARGS, chromium

AGENT_PASSWORD = "widget agent pw"
HOSTILE = "<img src=x onerror=alert(1)> my router keeps dropping the connection"
OFFLINE_TEXT = "my fibre light is blinking red"
WAIT_MS = 30_000  # a bot answer goes through Rasa and the action server
SCENARIO_S = 240


@dataclass
class Browser:
    context: BrowserContext
    page: Page
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@asynccontextmanager
async def widget_browser(width: int = 1280, height: int = 800) -> AsyncIterator[Browser]:
    """A fresh browser profile (so a fresh widget session) with dialogs and page errors recorded."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": width, "height": height})
            context.set_default_timeout(WAIT_MS)
            page = await context.new_page()
            seen = Browser(context, page)

            async def on_dialog(dialog: Any) -> None:
                seen.dialogs.append(dialog.message)
                await dialog.dismiss()

            page.on("dialog", on_dialog)
            page.on("pageerror", lambda error: seen.errors.append(str(error)))
            yield seen
        finally:
            await browser.close()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), SCENARIO_S))


def demo_url(stack: Stack) -> str:
    return f"{stack.settings.rasa_url}/webhooks/webchat/demo"


def screenshot_path(tmp_path: Path) -> Path:
    if os.environ.get("SAVE_SCREENSHOTS"):
        return ROOT / "docs" / "screenshots" / "widget.png"
    return tmp_path / "widget.png"


def messages(page: Page, role: str, text: str) -> Locator:
    return page.locator(f'[data-testid="blw-message"][data-role="{role}"]').filter(has_text=text)


async def open_widget(page: Page, stack: Stack) -> str:
    """Open the demo page and the chat panel; return the widget's session id once connected."""
    await page.goto(demo_url(stack))
    await page.get_by_test_id("blw-launcher").click()
    await page.get_by_test_id("blw-panel").wait_for(state="visible", timeout=WAIT_MS)
    await page.get_by_test_id("blw-status").filter(has_text="Online").wait_for(timeout=WAIT_MS)
    return await session_id(page)


async def session_id(page: Page) -> str:
    await page.wait_for_function("() => !!localStorage.getItem('brightline.session')", timeout=WAIT_MS)
    return await page.evaluate("() => localStorage.getItem('brightline.session')")


async def ask(page: Page, text: str) -> Locator:
    await page.get_by_test_id("blw-input").fill(text)
    await page.get_by_test_id("blw-send").click()
    mine = messages(page, "customer", text).last
    await mine.wait_for(timeout=WAIT_MS)
    return mine


async def user_texts(stack: Stack, sender: str) -> list[str]:
    tracker = await asyncio.to_thread(stack.tracker, sender)
    return [event.get("text") for event in tracker.get("events", []) if event.get("event") == "user"]


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20) -> Any:
    """Poll an async check until it returns something truthy; return its last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := await check()) and loop.time() < deadline:
        await asyncio.sleep(0.25)
    return value


def test_customer_gets_an_answer_and_the_conversation_survives_a_reload(stack: Stack) -> None:
    async def scenario() -> None:
        async with widget_browser() as browser:
            page = browser.page
            sender = await open_widget(page, stack)
            assert await page.get_by_test_id("blw-panel").get_attribute("role") == "dialog"
            assert await page.get_by_test_id("blw-panel").get_attribute("aria-label")
            assert await page.get_by_label("Your message").count() == 1  # the input has a label

            await ask(page, "How can I pay my bill?")
            answer = messages(page, "bot", "direct debit")
            await answer.wait_for(timeout=WAIT_MS)
            assert await page.get_by_test_id("blw-typing").is_hidden()
            link = answer.locator('a[href="https://brightline.example/pay"]')
            assert await link.count() == 1 and await link.inner_text() == "https://brightline.example/pay"
            assert await answer.get_by_test_id("blw-button").filter(has_text="direct debit").count() == 1

            # A reload restores the open panel, the same session and the whole conversation.
            await page.reload()
            await messages(page, "customer", "How can I pay my bill?").wait_for(timeout=WAIT_MS)
            await messages(page, "bot", "direct debit").wait_for(timeout=WAIT_MS)
            assert await page.get_by_test_id("blw-panel").is_visible()
            assert await session_id(page) == sender
            assert await messages(page, "customer", "How can I pay my bill?").count() == 1

            # The launcher closes the panel, and it stays closed after a reload.
            await page.get_by_test_id("blw-launcher").click()
            await page.get_by_test_id("blw-panel").wait_for(state="hidden", timeout=WAIT_MS)
            await page.reload()
            await page.get_by_test_id("blw-launcher").wait_for(timeout=WAIT_MS)
            await page.wait_for_function(
                "() => window.BrightlineChat && window.BrightlineChat._socket", timeout=WAIT_MS
            )
            assert await page.get_by_test_id("blw-panel").is_hidden()
            assert browser.errors == [] and browser.dialogs == []

    run(scenario)


def test_did_you_mean_buttons_answer_and_customer_markup_stays_text(stack: Stack) -> None:
    async def scenario() -> None:
        async with widget_browser() as browser:
            page = browser.page
            sender = await open_widget(page, stack)

            await ask(page, "refund")
            question = messages(page, "bot", "did you mean")
            await question.wait_for(timeout=WAIT_MS)
            choices = question.get_by_test_id("blw-button")
            assert await choices.count() >= 3
            assert await choices.last.inner_text() == "Talk to a person"
            title = (await choices.first.inner_text()).strip()
            answered = await page.locator('[data-testid="blw-message"][data-role="bot"]').count()
            await choices.first.click()

            # The bubble shows the button's title; the payload went to the bot, which answers.
            await messages(page, "customer", title).wait_for(timeout=WAIT_MS)
            reply = page.locator('[data-testid="blw-message"][data-role="bot"]').nth(answered)
            await reply.wait_for(timeout=WAIT_MS)
            assert "did you mean" not in (await reply.inner_text()).lower()
            assert await choices.first.is_disabled()  # a choice is made once
            said = await user_texts(stack, sender)
            assert said[-1].startswith("/faq_choice"), said

            # Markup a customer types is shown as text, never run.
            await ask(page, HOSTILE)
            sent = page.locator('[data-testid="blw-message"][data-role="customer"][data-state="sent"]')
            await sent.filter(has_text=HOSTILE).wait_for(timeout=WAIT_MS)
            assert await page.get_by_test_id("blw-messages").locator("img").count() == 0
            await page.reload()
            await messages(page, "customer", HOSTILE).wait_for(timeout=WAIT_MS)
            assert await page.get_by_test_id("blw-messages").locator("img").count() == 0
            assert browser.dialogs == [] and browser.errors == []

    run(scenario)


def test_message_typed_offline_reaches_the_bot_once_when_back_online(stack: Stack) -> None:
    async def scenario() -> None:
        async with widget_browser() as browser:
            page, context = browser.page, browser.context
            sender = await open_widget(page, stack)

            # Offline emulation alone keeps an open WebSocket, so drop the socket as a
            # network failure would; socket.io then tries to reconnect and cannot.
            await context.set_offline(True)
            await page.evaluate("() => window.BrightlineChat._debug.drop()")
            await page.get_by_test_id("blw-status").filter(has_text="Reconnecting").wait_for(timeout=WAIT_MS)

            bubble = await ask(page, OFFLINE_TEXT)
            assert await bubble.get_attribute("data-state") == "pending"
            outbox = json.loads(await page.evaluate("() => localStorage.getItem('brightline.outbox')"))
            assert [item["message"] for item in outbox] == [OFFLINE_TEXT]
            await asyncio.sleep(2)  # long enough for a wrongly sent message to be stored
            assert OFFLINE_TEXT not in await user_texts(stack, sender)

            await context.set_offline(False)
            await page.get_by_test_id("blw-status").filter(has_text="Online").wait_for(timeout=WAIT_MS)
            sent = page.locator('[data-testid="blw-message"][data-role="customer"][data-state="sent"]')
            await sent.filter(has_text=OFFLINE_TEXT).wait_for(timeout=WAIT_MS)

            async def stored() -> list[str]:
                return [text for text in await user_texts(stack, sender) if text == OFFLINE_TEXT]

            assert await eventually(stored) == [OFFLINE_TEXT]
            assert json.loads(await page.evaluate("() => localStorage.getItem('brightline.outbox')")) == []

            # The history after a reload holds it once, too.
            await page.reload()
            await messages(page, "customer", OFFLINE_TEXT).wait_for(timeout=WAIT_MS)
            await page.get_by_test_id("blw-status").filter(has_text="Online").wait_for(timeout=WAIT_MS)
            assert await messages(page, "customer", OFFLINE_TEXT).count() == 1
            assert await stored() == [OFFLINE_TEXT]
            assert browser.errors == []

    run(scenario)


def test_message_whose_ack_was_lost_is_sent_again_but_stored_once(stack: Stack) -> None:
    text = "what does the blue light on my hub mean"

    async def scenario() -> None:
        async with widget_browser() as browser:
            page = browser.page
            sender = await open_widget(page, stack)
            # The message leaves, then the connection drops before the server can acknowledge
            # it; the widget sends it again after reconnecting and the server ignores the repeat.
            await page.evaluate("(text) => { BrightlineChat.send(text); BrightlineChat._debug.drop(); }", text)
            await page.get_by_test_id("blw-status").filter(has_text="Online").wait_for(timeout=WAIT_MS)
            await page.wait_for_function(
                "() => JSON.parse(localStorage.getItem('brightline.outbox') || '[]').length === 0", timeout=WAIT_MS
            )

            async def stored() -> list[str]:
                return [said for said in await user_texts(stack, sender) if said == text]

            assert await eventually(stored) == [text]
            await asyncio.sleep(1)  # a late duplicate would land by now
            assert await stored() == [text]
            await page.reload()
            await messages(page, "customer", text).wait_for(timeout=WAIT_MS)
            assert await messages(page, "customer", text).count() == 1
            assert browser.errors == []

    run(scenario)


def test_agent_reply_shows_the_agent_name_and_closing_asks_for_stars(stack: Stack, tmp_path: Path) -> None:
    stack.add_agent("wanda", AGENT_PASSWORD)
    shot = screenshot_path(tmp_path)
    state: dict[str, str] = {}

    async def scenario() -> None:
        async with Agent(stack.console_url, "wanda", AGENT_PASSWORD) as wanda, widget_browser() as browser:
            await wanda.connect()  # an open console makes the agent "online"
            page = browser.page
            sender = state["sender"] = await open_widget(page, stack)

            await ask(page, "my new phone has not arrived yet")
            await page.locator('[data-testid="blw-message"][data-role="bot"]').nth(1).wait_for(timeout=WAIT_MS)
            await page.get_by_test_id("blw-human").click()
            await messages(page, "customer", "Talk to a person").wait_for(timeout=WAIT_MS)
            queued = messages(page, "bot", "in the queue")
            await queued.wait_for(timeout=WAIT_MS)
            assert "blw-msg-queue" in (await queued.get_attribute("class") or "")

            status, _ = await wanda.post(f"/api/chats/{sender}/claim")
            assert status == 200
            await page.locator('[data-testid="blw-message"]').filter(has_text="this is wanda").wait_for(timeout=WAIT_MS)
            status, _ = await wanda.post(
                f"/api/chats/{sender}/reply",
                {"text": "Your phone ships today; here is the tracking: https://brightline.example/track/BL-5521"},
            )
            assert status == 200
            reply = messages(page, "agent", "ships today")
            await reply.wait_for(timeout=WAIT_MS)
            assert "Wanda · Brightline support" in await reply.inner_text()
            assert await reply.locator('a[href="https://brightline.example/track/BL-5521"]').count() == 1

            status, _ = await wanda.post(f"/api/chats/{sender}/close")
            assert status == 200
            question = messages(page, "bot", "how would you rate")
            await question.wait_for(timeout=WAIT_MS)
            stars = question.get_by_test_id("blw-button")
            assert await stars.count() == 5
            assert [await star.get_attribute("data-score") for star in await stars.all()] == ["1", "2", "3", "4", "5"]
            await question.locator('[data-testid="blw-button"][data-score="5"]').click()
            await messages(page, "bot", "thank you for your feedback").wait_for(timeout=WAIT_MS)
            assert await page.get_by_test_id("blw-typing").is_hidden()

            shot.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(shot))
            assert browser.errors == [] and browser.dialogs == []

    run(scenario)
    ratings = [f for _, f in stack.redis_client().xrange(keys.CSAT) if f["conversation_id"] == state["sender"]]
    assert [(r["score"], r["agent"]) for r in ratings] == [("5", "wanda")]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_troubleshooting_guide_is_tapped_through_to_resolution(stack: Stack, tmp_path: Path) -> None:
    from bot.kb.loader import load
    from bot.kb.model import DONE, pick
    from tests.e2e.test_guides import path_to

    guide = load(ROOT / "data" / "faq").get("outages-no-internet")
    path = path_to(guide, DONE)
    shot = ROOT / "docs" / "screenshots" / "guide.png" if os.environ.get("SAVE_SCREENSHOTS") else tmp_path / "g.png"

    async def scenario() -> None:
        async with widget_browser(width=1000, height=900) as browser:
            page = browser.page
            await open_widget(page, stack)
            await ask(page, "my internet is not working")
            for step_id, option in path:
                step = guide.guide.step(step_id)
                asked = messages(page, "bot", pick(step.ask, "en")).last
                await asked.wait_for(timeout=WAIT_MS)
                title = pick(step.options[option].title, "en")
                await asked.get_by_test_id("blw-button").filter(has_text=title).click()
                # The customer's bubble shows the button's title, not its payload.
                await messages(page, "customer", title).last.wait_for(timeout=WAIT_MS)
            last = guide.guide.step(path[-1][0]).options[path[-1][1]]
            await messages(page, "bot", pick(last.reply or guide.guide.resolved, "en")[:40]).wait_for(timeout=WAIT_MS)
            assert await page.get_by_text("/guide_answer").count() == 0
            assert not browser.errors and not browser.dialogs
            await page.screenshot(path=str(shot))

    run(scenario)


def test_no_typing_dots_while_a_person_has_the_chat(stack: Stack) -> None:
    """The bot is paused while an agent has the chat: a customer's message gets no bot
    reply, so the dots go away once the message is taken, not after 15 s."""
    stack.add_agent("tomas", AGENT_PASSWORD)

    async def scenario() -> None:
        async with Agent(stack.console_url, "tomas", AGENT_PASSWORD) as tomas, widget_browser() as browser:
            page = browser.page
            sender = await open_widget(page, stack)
            await ask(page, "I want to talk to a person")
            await messages(page, "bot", "support team").wait_for(timeout=WAIT_MS)
            assert (await tomas.post(f"/api/chats/{sender}/claim"))[0] == 200
            await page.locator('[data-testid="blw-message"]').filter(has_text="this is tomas").wait_for(timeout=WAIT_MS)
            mine = await ask(page, "my order number is BL-7781")
            await page.wait_for_function(
                "el => el.getAttribute('data-state') === 'sent'", arg=await mine.element_handle(), timeout=WAIT_MS
            )
            await page.get_by_test_id("blw-typing").wait_for(state="hidden", timeout=3000)
            assert (await tomas.post(f"/api/chats/{sender}/close"))[0] == 200
            assert browser.errors == []

    run(scenario)


def test_the_widget_fits_a_phone_screen(stack: Stack) -> None:
    """375 x 667 (an iPhone SE): the launcher is on screen, the open panel shows the whole
    input and the Send button, and a question gets its answer."""

    async def scenario() -> None:
        async with widget_browser(375, 667) as browser:
            page = browser.page
            await page.goto(demo_url(stack))
            launcher = page.get_by_test_id("blw-launcher")
            await launcher.wait_for()
            box = await launcher.bounding_box()
            assert box and box["x"] >= 0 and box["y"] >= 0, box
            assert box["x"] + box["width"] <= 375 and box["y"] + box["height"] <= 667, box
            await launcher.click()
            await page.get_by_test_id("blw-status").filter(has_text="Online").wait_for(timeout=WAIT_MS)
            for testid in ("blw-input", "blw-send"):
                part = await page.get_by_test_id(testid).bounding_box()
                assert part and part["x"] >= 0 and part["x"] + part["width"] <= 375, (testid, part)
                assert part["y"] >= 0 and part["y"] + part["height"] <= 667, (testid, part)
            await ask(page, "how do I pay my bill")
            await page.locator('[data-testid="blw-message"][data-role="bot"]').nth(1).wait_for(timeout=WAIT_MS)
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the demo page is {overflow}px wider than the phone"
            assert browser.errors == []

    run(scenario)


def test_typing_shows_both_ways_while_a_person_has_the_chat(stack: Stack) -> None:
    """The agent sees the customer typing; the customer sees "Ulla is typing" dots while the
    agent writes, which go away when nobody types."""
    stack.add_agent("ulla", AGENT_PASSWORD)

    async def scenario() -> None:
        async with Agent(stack.console_url, "ulla", AGENT_PASSWORD) as ulla, widget_browser() as browser:
            await ulla.connect()
            page = browser.page
            sender = await open_widget(page, stack)
            await ask(page, "I want to talk to a person")
            await messages(page, "bot", "support team").wait_for(timeout=WAIT_MS)
            assert (await ulla.post(f"/api/chats/{sender}/claim"))[0] == 200
            await page.locator('[data-testid="blw-message"]').filter(has_text="this is ulla").wait_for(timeout=WAIT_MS)
            await page.get_by_test_id("blw-typing").wait_for(state="hidden", timeout=5000)

            await page.wait_for_timeout(2100)  # "typing" goes out at most every 2 s; the last was the question
            await page.get_by_test_id("blw-input").press_sequentially("my bill", delay=50)
            await ulla.expect_push(lambda p: p.get("type") == "typing" and p.get("conversation_id") == sender)

            await ulla.ws.send_json({"type": "typing", "conversation_id": sender})
            dots = page.get_by_test_id("blw-typing")
            await dots.wait_for(state="visible", timeout=5000)
            assert await dots.get_attribute("data-agent") == "Ulla"
            await dots.wait_for(state="hidden", timeout=10_000)  # nobody typing any more
            assert (await ulla.post(f"/api/chats/{sender}/close"))[0] == 200
            assert browser.errors == []

    run(scenario)
