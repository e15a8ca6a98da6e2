"""The agent console in a real browser: Debian's headless Chromium, driven by Playwright.

Set ``SAVE_SCREENSHOTS=1`` (``make screenshots``) to refresh ``docs/screenshots/console.png``
for the README; otherwise the screenshot goes to the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from playwright.async_api import async_playwright

from tests.conftest import ROOT
from tests.e2e.clients import Agent, Customer
from tests.e2e.conftest import Stack, new_webchat_id

PASSWORD = "console browser test"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOSTILE = "<img src=x onerror=alert(1)> my router keeps dropping the connection"


def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(path).exists(), "Debian's chromium is missing; `make test` installs it"
    return path


async def log_in(page, stack: Stack, name: str) -> None:
    """The console's login form, as an agent fills it in."""
    await page.goto(f"{stack.console_url}/login")
    await page.get_by_test_id("login-name").fill(name)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await page.wait_for_url(f"{stack.console_url}/")


def test_agent_logs_in_takes_a_chat_and_replies_in_the_browser(stack: Stack, tmp_path: Path) -> None:
    stack.add_agent("erin", PASSWORD)
    sender = new_webchat_id()
    shot = ROOT / "docs" / "screenshots" / "console.png" if os.environ.get("SAVE_SCREENSHOTS") else tmp_path / "c.png"

    async def scenario() -> None:
        async with Customer(stack.settings.rasa_url, sender) as customer, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            dialogs: list[str] = []
            page.on("dialog", lambda d: dialogs.append(d.message))
            await page.goto(f"{stack.console_url}/")
            assert page.url.endswith("/login")
            await page.get_by_test_id("login-name").fill("erin")
            await page.get_by_test_id("login-password").fill(PASSWORD)
            await page.get_by_test_id("login-submit").click()
            await page.wait_for_url(f"{stack.console_url}/")

            # The customer writes (with markup in the text) and asks for a person.
            await customer.say("where is my order?")
            await customer.expect(lambda m: bool(m.get("text")))
            await customer.say(HOSTILE)
            await customer.expect(lambda m: bool(m.get("text")))
            await customer.say("I want to speak to a human, please")
            await customer.expect_text("support team")

            item = page.locator(f'[data-testid="queue-item"][data-conversation-id="{sender}"]')
            await item.wait_for(timeout=20_000)
            await item.get_by_test_id("take-button").click()
            await customer.expect_text("this is erin")

            transcript = page.get_by_test_id("transcript")
            await transcript.get_by_text(HOSTILE).wait_for(timeout=20_000)
            assert await transcript.locator("img").count() == 0  # shown as text, never as HTML
            assert await page.get_by_test_id("card-reason").inner_text()

            await page.get_by_test_id("reply-input").fill("Hi, I'm Erin. Let me check your line now.")
            await page.get_by_test_id("reply-send").click()
            reply = await customer.expect_text("let me check your line")
            assert reply.get("agent") == "erin"
            await transcript.get_by_text("Let me check your line now.").wait_for(timeout=20_000)

            # A new customer message appears live in the open chat.
            await customer.say("thanks, the light on the router is red")
            await transcript.get_by_text("the light on the router is red").wait_for(timeout=20_000)

            shot.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(shot))
            assert dialogs == []
            await browser.close()

    asyncio.run(asyncio.wait_for(scenario(), 240))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_agent_works_a_chat_on_a_phone(stack: Stack) -> None:
    """375 x 667: the lists first, then the chat alone with its reply box and Send on screen,
    and back to the lists; nothing wider than the screen."""
    stack.add_agent("pia", PASSWORD)
    sender = new_webchat_id()

    async def no_overflow(page) -> None:
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the console is {overflow}px wider than the phone"

    async def scenario() -> None:
        async with Customer(stack.settings.rasa_url, sender) as customer, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await log_in(page, stack, "pia")
            await no_overflow(page)

            await customer.say("I want to speak to a human, please")
            await customer.expect_text("support team")
            item = page.locator(f'[data-testid="queue-item"][data-conversation-id="{sender}"]')
            await item.wait_for(timeout=20_000)
            await item.get_by_test_id("take-button").click()
            await customer.expect_text("this is pia")
            send = page.get_by_test_id("reply-send")
            await send.wait_for(timeout=20_000)
            assert not await page.get_by_test_id("queue-waiting").is_visible()  # the chat has the screen
            for part in (page.get_by_test_id("reply-input"), send):
                box = await part.bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375, box
                assert box["y"] >= 0 and box["y"] + box["height"] <= 667, box
            await no_overflow(page)
            await page.get_by_test_id("reply-input").fill("Hi, Pia here, from my phone.")
            await send.click()
            await customer.expect_text("from my phone")
            await page.get_by_test_id("back-to-list").click()
            await page.get_by_test_id("my-chats").wait_for()
            assert await page.get_by_test_id("my-chats").is_visible()
            await no_overflow(page)
            assert errors == []
            await browser.close()

    asyncio.run(asyncio.wait_for(scenario(), 240))


def test_notes_stay_with_agents_and_a_transfer_is_two_clicks(stack: Stack) -> None:
    """In the browser: a note shows in the transcript marked as a note and never reaches the
    customer; the transfer panel lists the teams; a transfer tells the customer once."""
    stack.add_agent("nora", PASSWORD)
    sender = new_webchat_id()

    async def scenario() -> None:
        async with Customer(stack.settings.rasa_url, sender) as customer, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await log_in(page, stack, "nora")
            await customer.say("I want to speak to a human, please")
            await customer.expect_text("support team")
            item = page.locator(f'[data-testid="queue-item"][data-conversation-id="{sender}"]')
            await item.wait_for(timeout=20_000)
            await item.get_by_test_id("take-button").click()
            await customer.expect_text("this is nora")

            await page.get_by_test_id("reply-input").fill("<b>VIP</b> customer, refund approved by Lena")
            await page.get_by_test_id("note-send").click()
            note = page.get_by_test_id("note").filter(has_text="refund approved by Lena")
            await note.wait_for(timeout=20_000)
            assert await note.locator("b").count() == 0  # text, not markup
            quiet = await customer.quiet_for(1.5)
            assert not [m for m in quiet if "refund approved" in (m.get("text") or "")]

            await page.get_by_test_id("transfer-open").click()
            options = await page.get_by_test_id("transfer-to").locator("option").all_text_contents()
            assert "Billing" in options and "Technical support" in options
            await page.get_by_test_id("transfer-to").select_option("team:billing")
            await page.get_by_test_id("transfer-note").fill("asks about a refund")
            await page.get_by_test_id("transfer-send").click()
            await customer.expect_text("won't need to repeat")
            await page.get_by_test_id("transfer-panel").wait_for(state="hidden", timeout=20_000)
            assert errors == []
            await browser.close()
        async with Agent(stack.console_url, "nora", PASSWORD) as nora:  # leave the queue as it was
            assert (await nora.post(f"/api/chats/{sender}/claim"))[0] == 200
            assert (await nora.post(f"/api/chats/{sender}/close"))[0] == 200

    asyncio.run(asyncio.wait_for(scenario(), 240))


def test_an_image_the_customer_sent_shows_in_the_transcript(stack: Stack) -> None:
    """A file a WhatsApp customer sent during the handoff (stored by the channel as
    bot/channels/media.py does) is shown to the agent as an image, loaded from the console."""
    import base64
    import time

    import redis as redis_sync
    import requests

    stack.add_agent("ines", PASSWORD)
    sender = new_webchat_id()
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )
    address = stack.settings.redis
    r = redis_sync.Redis(host=address.host, port=address.port, db=address.db, password=address.password)
    r.hset(
        "media:console-test-0001",
        mapping={
            "data": png,
            "mime": "image/png",
            "name": "router.png",
            "size": len(png),
            "conversation": sender,
            "kind": "image",
            "at": time.time(),
        },
    )

    async def scenario() -> None:
        async with Customer(stack.settings.rasa_url, sender) as customer, async_playwright() as pw:
            await customer.say("I want to speak to a human, please")
            await customer.expect_text("support team")
            attachment = {
                "id": "console-test-0001",
                "kind": "image",
                "mime": "image/png",
                "name": "router.png",
                "size": len(png),
            }
            event = {
                "event": "user",
                "text": "[image] the lights",
                "timestamp": time.time(),
                "input_channel": "whatsapp",
                "metadata": {"attachment": attachment},
                "parse_data": {"intent": {"name": "faq"}},
            }
            url = f"{stack.settings.rasa_url}/conversations/{sender}/tracker/events"
            assert requests.post(url, params={"token": stack.token}, json=[event], timeout=30).status_code == 200
            browser = await pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await log_in(page, stack, "ines")
            item = page.locator(f'[data-testid="queue-item"][data-conversation-id="{sender}"]')
            await item.wait_for(timeout=20_000)
            await item.get_by_test_id("take-button").click()
            image = page.get_by_test_id("attachment").locator("img")
            await image.wait_for(timeout=20_000)
            await page.wait_for_function(
                "img => img.complete && img.naturalWidth === 1", arg=await image.element_handle()
            )
            await browser.close()
        async with Agent(stack.console_url, "ines", PASSWORD) as ines:
            assert (await ines.post(f"/api/chats/{sender}/close"))[0] == 200

    asyncio.run(asyncio.wait_for(scenario(), 240))
    r.delete("media:console-test-0001")
