"""Routing and the agent's tools through the real stack: a billing chat offered to the
billing agent and moving on when they do not take it, someone without the skill kept out
while a skilled colleague is online, a transfer to technical support with a note (the
customer asked nothing again), chats coming back first in line when their agent logs out,
notes that never reach the customer, who else is viewing, and the customer's past
conversations on the card."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

import pytest
import requests
from redis.asyncio import Redis

from handoff import keys
from tests.e2e.clients import Agent
from tests.e2e.conftest import Stack, new_sender

PASSWORD = "routing test password"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 240))


@pytest.fixture(scope="module")
def team(stack: Stack) -> dict[str, str]:
    stack.add_agent("billy", PASSWORD, teams="billing", languages="en")
    stack.add_agent("bella", PASSWORD, teams="billing")
    stack.add_agent("tina", PASSWORD, teams="technical")
    stack.add_agent("gus", PASSWORD)  # no skills listed: any chat
    return {"billing": "billy", "billing2": "bella", "technical": "tina", "any": "gus"}


async def only_these_online(stack: Stack, names: set[str]) -> None:
    """Agents other modules left online would get offers too: this test's team is alone."""
    address = stack.settings.redis
    redis = Redis(host=address.host, port=address.port, db=address.db, password=address.password)
    try:
        for raw in await redis.smembers(keys.AGENTS):
            name = raw.decode()
            if name not in names:
                await redis.hset(keys.agent(name), mapping={"status": "offline", "auto_away": ""})
    finally:
        await redis.close()


def billing_handoff(stack: Stack) -> str:
    sender = new_sender()
    assert stack.say(sender, "how do I pay my bill")
    reply = stack.say(sender, "I want to talk to a person")
    assert any("support team" in (m.get("text") or "").lower() for m in reply), reply
    return f"rest:{sender}"


def offered(push: dict, conversation: str) -> bool:
    return push.get("type") == "offer" and push.get("conversation_id") == conversation


def test_a_chat_is_offered_to_the_skilled_agent_and_moves_on_when_not_taken(stack: Stack, team: dict) -> None:
    async def scenario() -> None:
        async with (
            Agent(stack.console_url, "billy", PASSWORD) as billy,
            Agent(stack.console_url, "bella", PASSWORD) as bella,
            Agent(stack.console_url, "tina", PASSWORD) as tina,
        ):
            for agent in (billy, bella, tina):
                await agent.connect()
            await only_these_online(stack, {"billy", "bella", "tina"})
            conversation = await asyncio.to_thread(billing_handoff, stack)
            status, chat = await billy.get(f"/api/chats/{conversation}")
            assert chat["card"]["team"] == "billing"
            first = await asyncio.gather(
                billy.expect_push(lambda p: offered(p, conversation), timeout=15),
                bella.expect_push(lambda p: offered(p, conversation), timeout=15),
                return_exceptions=True,
            )
            got = [name for name, r in zip(("billy", "bella"), first, strict=True) if isinstance(r, dict)]
            assert len(got) == 2, first  # offered to one, then (3 s untaken) to the other
            # Technical support may not take a billing chat while billing people are online.
            status, body = await tina.post(f"/api/chats/{conversation}/claim")
            assert status == 409 and "Billing" in body["error"], body
            # Whoever has it now takes it.
            status, _ = await bella.post(f"/api/chats/{conversation}/claim")
            assert status == 200
            await bella.post(f"/api/chats/{conversation}/close")

    run(scenario())


def test_transfer_to_technical_with_a_note_and_the_customer_repeats_nothing(stack: Stack, team: dict) -> None:
    async def scenario() -> None:
        async with (
            Agent(stack.console_url, "billy", PASSWORD) as billy,
            Agent(stack.console_url, "tina", PASSWORD) as tina,
        ):
            await billy.connect()
            await tina.connect()
            await only_these_online(stack, {"billy", "tina"})
            conversation = await asyncio.to_thread(billing_handoff, stack)
            assert (await billy.post(f"/api/chats/{conversation}/claim"))[0] == 200
            status, _ = await billy.post(f"/api/chats/{conversation}/notes", {"text": "Bill is fine; router red light"})
            assert status == 200
            status, body = await billy.post(
                f"/api/chats/{conversation}/transfer", {"team": "technical", "note": "router reboot done, still red"}
            )
            assert status == 200, body
            await tina.expect_push(lambda p: offered(p, conversation), timeout=15)
            status, queue = await tina.get("/api/queue")
            row = next(r for r in queue["waiting"] if r["conversation_id"] == conversation)
            assert row["team"] == "technical" and row["returned"]
            newer = [r["position"] for r in queue["waiting"] if not r["returned"]]
            assert all(row["position"] < p for p in newer), queue["waiting"]  # first in line
            assert (await tina.post(f"/api/chats/{conversation}/claim"))[0] == 200
            status, chat = await tina.get(f"/api/chats/{conversation}")
            assert chat["card"]["team"] == "technical"
            texts = [n["text"] for n in chat["notes"]]
            assert "Bill is fine; router red light" in texts
            assert any("Technical support" in t and "router reboot done, still red" in t for t in texts), texts
            events = await asyncio.to_thread(stack.tracker, conversation)
            said = [e.get("text") or "" for e in events["events"] if e.get("event") in ("bot", "user")]
            assert not any("router red light" in t or "still red" in t for t in said)  # notes never reach them
            assert any("won't need to repeat" in t for t in said)
            assert any("this is tina" in t.lower() for t in said)  # the new agent greets
            assert (await tina.post(f"/api/chats/{conversation}/close"))[0] == 200

    run(scenario())


def test_chats_come_back_first_in_line_when_their_agent_logs_out(stack: Stack, team: dict) -> None:
    async def scenario() -> None:
        async with (
            Agent(stack.console_url, "billy", PASSWORD) as billy,
            Agent(stack.console_url, "bella", PASSWORD) as bella,
        ):
            await only_these_online(stack, {"billy", "bella"})
            conversation = await asyncio.to_thread(billing_handoff, stack)
            assert (await billy.post(f"/api/chats/{conversation}/claim"))[0] == 200
            later = await asyncio.to_thread(billing_handoff, stack)  # waits in front of nobody
            async with billy.http.post(
                f"{stack.console_url}/logout", headers={"X-Requested-With": "console"}, allow_redirects=False
            ) as response:
                assert response.status == 302
            _status, queue = await bella.get("/api/queue")
            ids = [r["conversation_id"] for r in queue["waiting"]]
            assert ids.index(conversation) < ids.index(later)  # it came back ahead of a newer chat
            assert next(r for r in queue["waiting"] if r["conversation_id"] == conversation)["returned"]
            for cid in (conversation, later):
                assert (await bella.post(f"/api/chats/{cid}/claim"))[0] == 200
                assert (await bella.post(f"/api/chats/{cid}/close"))[0] == 200

    run(scenario())


def test_agents_see_who_else_is_viewing_a_chat(stack: Stack, team: dict) -> None:
    async def scenario() -> None:
        async with (
            Agent(stack.console_url, "billy", PASSWORD) as billy,
            Agent(stack.console_url, "bella", PASSWORD) as bella,
        ):
            await billy.connect()
            await bella.connect()
            conversation = await asyncio.to_thread(billing_handoff, stack)
            await billy.ws.send_json({"type": "viewing", "conversation_id": conversation})
            await bella.ws.send_json({"type": "viewing", "conversation_id": conversation})
            push = await billy.expect_push(
                lambda p: p.get("type") == "viewers" and p.get("agents") == ["bella", "billy"], timeout=10
            )
            assert push["conversation_id"] == conversation
            await bella.ws.send_json({"type": "viewing", "conversation_id": None})
            await billy.expect_push(lambda p: p.get("type") == "viewers" and p.get("agents") == ["billy"], timeout=10)
            assert (await billy.post(f"/api/chats/{conversation}/claim"))[0] == 200
            assert (await billy.post(f"/api/chats/{conversation}/close"))[0] == 200

    run(scenario())


def test_the_card_shows_the_customers_past_conversations(stack: Stack, team: dict) -> None:
    """An earlier conversation two days ago (handed to Ann, rated 2) is on today's card."""
    sender = new_sender()
    conversation = f"rest:{sender}"
    two_days_ago = time.time() - 2 * 86400
    earlier = [
        {"event": "session_started", "timestamp": two_days_ago},
        {
            "event": "user",
            "timestamp": two_days_ago + 1,
            "text": "my bill is wrong",
            "input_channel": "rest",
            "parse_data": {"intent": {"name": "faq"}},
        },
        {
            "event": "slot",
            "name": "handoff",
            "timestamp": two_days_ago + 2,
            "value": {"reason": "asked_for_human", "team": "billing", "topic": "billing"},
        },
        {"event": "pause", "timestamp": two_days_ago + 2},
        {
            "event": "bot",
            "timestamp": two_days_ago + 60,
            "text": "This is ann",
            "metadata": {"agent": "ann", "greeting": "x"},
        },
        {"event": "resume", "timestamp": two_days_ago + 600, "metadata": {"handoff_end": "closed", "agent": "ann"}},
        {"event": "slot", "name": "csat", "timestamp": two_days_ago + 700, "value": {"asked": 1.0, "score": 2}},
    ]
    url = f"{stack.settings.rasa_url}/conversations/{quote(conversation, safe=':')}/tracker/events"
    assert requests.post(url, params={"token": stack.token}, json=earlier, timeout=30).status_code == 200
    stack.say(sender, "I want to talk to a person")

    async def scenario() -> None:
        async with Agent(stack.console_url, "billy", PASSWORD) as billy:

            async def history() -> dict | None:
                _status, chat = await billy.get(f"/api/chats/{conversation}")
                found = chat["card"]["history"]
                return found if found["count"] else None

            found = None
            for _ in range(40):
                if found := await history():
                    break
                await asyncio.sleep(0.25)
            assert found and found["count"] == 1 and found["handed_off"] == 1, found
            (past,) = found["recent"]
            assert past["reason"] == "asked_for_human" and past["agent"] == "ann" and past["rating"] == 2
            assert (await billy.post(f"/api/chats/{conversation}/claim"))[0] == 200  # leave the queue empty
            assert (await billy.post(f"/api/chats/{conversation}/close"))[0] == 200

    run(scenario())


def test_out_of_reach_a_customer_leaves_an_address_and_an_agent_marks_the_follow_up_done(
    stack: Stack, team: dict
) -> None:
    """Nobody online: the bot offers to be contacted; a wrong address gets a clear word, a
    real one makes a follow-up with the whole transcript; done gives the chat to the bot."""

    async def scenario() -> None:
        await only_these_online(stack, set())
        sender = new_sender()
        conversation = f"rest:{sender}"
        await asyncio.to_thread(stack.say, sender, "my router shows a red light")
        reply = await asyncio.to_thread(stack.say, sender, "I want to talk to a person")
        assert any("e-mail address or phone number" in (m.get("text") or "") for m in reply), reply
        await asyncio.to_thread(stack.say, sender, "write to anna@@example")

        def said() -> list[str]:
            events = stack.tracker(conversation)["events"]
            return [e.get("text") or "" for e in events if e.get("event") == "bot"]

        for _ in range(40):
            if any("doesn't look like" in t for t in said()):
                break
            await asyncio.sleep(0.25)
        assert any("doesn't look like" in t for t in said())
        await asyncio.to_thread(stack.say, sender, "ok it is anna.k@example.lv")
        for _ in range(40):
            if any("anna.k@example.lv" in t and "contact you" in t for t in said()):
                break
            await asyncio.sleep(0.25)
        assert any("anna.k@example.lv" in t and "contact you" in t for t in said()), said()
        async with Agent(stack.console_url, "bella", PASSWORD) as bella:
            status, queue = await bella.get("/api/queue")
            row = next(r for r in queue["waiting"] if r["conversation_id"] == conversation)
            assert row["contact"] == "anna.k@example.lv"
            status, chat = await bella.get(f"/api/chats/{conversation}")
            texts = [t["text"] for t in chat["transcript"]]
            assert "my router shows a red light" in texts and chat["contact"] == "anna.k@example.lv"
            status, body = await bella.post(f"/api/chats/{conversation}/followup/done")
            assert status == 200, body
            status, chat = await bella.get(f"/api/chats/{conversation}")
            assert chat["state"] == "closed"
        reply = await asyncio.to_thread(stack.say, sender, "how do I pay my bill")
        assert reply and not any("rate" in (m.get("text") or "").lower() for m in reply)  # the bot answers again

    run(scenario())


def test_search_finds_chats_by_name_words_and_contact(stack: Stack, team: dict) -> None:
    sender = new_sender()
    conversation = f"rest:{sender}"
    body = {"sender": sender, "message": "my fibre modem smells of smoke", "metadata": {"customer_name": "Zelda Quist"}}
    requests.post(stack.rest_url, json=body, headers=stack.rest_headers, timeout=60).raise_for_status()
    stack.say(sender, "I want to talk to a person")

    async def scenario() -> None:
        async with Agent(stack.console_url, "gus", PASSWORD) as gus:
            for query in ("zelda", "Quist modem", "smells SMOKE"):
                status, found = await gus.get(f"/api/search?q={quote(query)}")
                assert status == 200
                assert conversation in [r["conversation_id"] for r in found["results"]], (query, found)
            status, found = await gus.get("/api/search?q=zelda+nonexistentword")
            assert conversation not in [r["conversation_id"] for r in found["results"]]
            assert (await gus.get("/api/search?q=%20"))[0] == 400
            assert (await gus.post(f"/api/chats/{conversation}/claim"))[0] == 200
            assert (await gus.post(f"/api/chats/{conversation}/close"))[0] == 200

    run(scenario())


def test_a_returning_customer_is_greeted_by_name(stack: Stack) -> None:
    sender = new_sender()
    conversation = f"rest:{sender}"
    long_ago = time.time() - 3 * 86400
    earlier = [
        {"event": "session_started", "timestamp": long_ago},
        {
            "event": "user",
            "timestamp": long_ago + 1,
            "text": "hi",
            "input_channel": "rest",
            "parse_data": {"intent": {"name": "greet"}},
        },
    ]
    url = f"{stack.settings.rasa_url}/conversations/{quote(conversation, safe=':')}/tracker/events"
    assert requests.post(url, params={"token": stack.token}, json=earlier, timeout=30).status_code == 200
    body = {"sender": sender, "message": "hello", "metadata": {"customer_name": "Anna Bērziņa"}}
    reply = requests.post(stack.rest_url, json=body, headers=stack.rest_headers, timeout=60).json()
    assert any("Anna, welcome back" in (m.get("text") or "") for m in reply), reply
    first_timer = new_sender()
    body = {"sender": first_timer, "message": "hello", "metadata": {"customer_name": "Anna Bērziņa"}}
    reply = requests.post(stack.rest_url, json=body, headers=stack.rest_headers, timeout=60).json()
    assert not any("welcome back" in (m.get("text") or "") for m in reply), reply


def test_files_are_served_to_agents_only_as_safe_types(stack: Stack, team: dict) -> None:
    """A stored image is served inline and sandboxed, a PDF as a download; an HTML "file" a
    customer managed to store is never served; nobody signed out gets anything."""
    import redis as redis_sync

    address = stack.settings.redis
    r = redis_sync.Redis(host=address.host, port=address.port, db=address.db, password=address.password)
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 64
    r.hset(
        "media:test-image-0001",
        mapping={
            "data": png,
            "mime": "image/png",
            "name": "router.png",
            "size": len(png),
            "conversation": "whatsapp:1",
            "kind": "image",
            "at": time.time(),
        },
    )
    r.hset(
        "media:test-pdf-00001",
        mapping={
            "data": b"%PDF-1.4 x",
            "mime": "application/pdf",
            "name": "bill.pdf",
            "size": 10,
            "conversation": "whatsapp:1",
            "kind": "document",
            "at": time.time(),
        },
    )
    r.hset(
        "media:test-html-0001",
        mapping={
            "data": b"<script>alert(1)</script>",
            "mime": "text/html",
            "name": "x.html",
            "size": 25,
            "conversation": "whatsapp:1",
            "kind": "document",
        },
    )
    agent = requests.Session()
    agent.post(f"{stack.console_url}/login", data={"name": "bella", "password": PASSWORD}, timeout=30)
    image = agent.get(f"{stack.console_url}/api/media/test-image-0001", timeout=30)
    assert image.status_code == 200 and image.content == png and image.headers["Content-Type"] == "image/png"
    assert (
        "sandbox" in image.headers["Content-Security-Policy"] and image.headers["X-Content-Type-Options"] == "nosniff"
    )
    pdf = agent.get(f"{stack.console_url}/api/media/test-pdf-00001", timeout=30)
    assert pdf.status_code == 200 and pdf.headers["Content-Disposition"].startswith("attachment")
    assert agent.get(f"{stack.console_url}/api/media/test-html-0001", timeout=30).status_code == 404
    assert agent.get(f"{stack.console_url}/api/media/..%2Fetc", timeout=30).status_code == 404
    assert requests.get(f"{stack.console_url}/api/media/test-image-0001", timeout=30).status_code == 401
    r.delete("media:test-image-0001", "media:test-pdf-00001", "media:test-html-0001")
