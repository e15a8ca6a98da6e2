"""Human handoff end to end, with real parts: a customer on the widget's socket.io channel,
Rasa, the action server, Redis and the handoff service; an agent on the console's API and
WebSocket."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from handoff import keys
from tests.e2e.clients import Agent, Customer
from tests.e2e.conftest import Stack, new_sender, new_webchat_id, wait_for

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def agents(stack: Stack) -> list[str]:
    for name in ("alice", "bob"):
        stack.add_agent(name, PASSWORD, capacity=3)
    return ["alice", "bob"]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 240))


@pytest.fixture
def nobody_waiting(stack: Stack) -> None:
    """Earlier tests leave chats waiting in the shared stack (angry ones climb as they age);
    a test about places in line starts with an empty queue, as if they had been closed."""
    redis = stack.redis_client()
    for conversation_id in redis.zrange(keys.QUEUE, 0, -1):
        redis.hset(keys.chat(conversation_id), "state", "closed")
        redis.zrem(keys.QUEUE, conversation_id)


def test_angry_customer_is_handed_off_and_the_agent_takes_over(
    stack: Stack, agents: list[str], nobody_waiting: None
) -> None:
    sender = new_webchat_id()

    async def scenario() -> None:
        async with (
            Agent(stack.console_url, "alice", PASSWORD) as alice,
            Customer(stack.settings.rasa_url, sender) as me,
        ):
            await alice.connect()
            await me.say("hi")
            await me.expect_text("virtual assistant")
            await me.say("where is my order?")
            await me.expect(lambda m: bool(m.get("text")), what="an answer")

            # An angry message: handed off with the right reason, and told the queue position.
            await me.say("THIS IS RIDICULOUS!!! Your service is useless, I've been waiting for days")
            told = await me.expect_text("in the queue")
            assert "number 1" in told["text"]
            pushed = await alice.expect_push(
                lambda p: p["type"] == "queue" and any(c["conversation_id"] == sender for c in p["waiting"])
            )
            waiting = next(c for c in pushed["waiting"] if c["conversation_id"] == sender)
            assert waiting["reason"] == "frustrated" and waiting["channel"] == "webchat"

            # The bot stays silent while paused.
            await me.say("hello? is anyone there?")
            assert await me.quiet_for(4) == []

            # The agent sees the card and the whole transcript, then takes the chat.
            status, chat = await alice.get(f"/api/chats/{sender}")
            assert status == 200 and chat["state"] == "waiting"
            assert chat["card"]["reason"] == "frustrated" and chat["card"]["scores"][-1] >= 0.7
            said = [t["text"] for t in chat["transcript"] if t["role"] == "customer"]
            assert said[:2] == ["hi", "where is my order?"] and "hello? is anyone there?" in said
            assert any(t["role"] == "bot" for t in chat["transcript"])
            assert (await alice.post(f"/api/chats/{sender}/claim"))[0] == 200
            await me.expect_text("this is alice")

            # Agent reply reaches the customer's socket, with the agent's name.
            assert (await alice.post(f"/api/chats/{sender}/reply", {"text": "Sorry about that, checking now."}))[
                0
            ] == 200
            reply = await me.expect_text("checking now")
            assert reply.get("agent") == "alice"

            # The customer's next message reaches the agent live.
            await me.say("my order number is BL-1234")
            push = await alice.expect_push(
                lambda p: p["type"] == "message" and p["message"]["text"] == "my order number is BL-1234"
            )
            assert push["conversation_id"] == sender and push["message"]["role"] == "customer"
            assert await me.quiet_for(2) == []  # still no bot talking over the agent

            # Hand back: the bot greets again and answers.
            assert (await alice.post(f"/api/chats/{sender}/handback"))[0] == 200
            await me.expect_text("back with brightline's virtual assistant")
            await me.say("how can I pay my bill?")
            await me.expect_text("direct debit")

    run(scenario())


def test_asking_for_a_person_then_close_sends_csat_and_stores_it(stack: Stack, agents: list[str]) -> None:
    sender = new_webchat_id()

    async def scenario() -> None:
        async with Agent(stack.console_url, "bob", PASSWORD) as bob, Customer(stack.settings.rasa_url, sender) as me:
            await me.say("I want to talk to a real person")
            await me.expect_text("in the queue")
            _status, chat = await bob.get(f"/api/chats/{sender}")
            assert chat["card"]["reason"] == "asked_for_human"
            assert (await bob.post(f"/api/chats/{sender}/claim"))[0] == 200
            assert (await bob.post(f"/api/chats/{sender}/close"))[0] == 200
            question = await me.expect_text("how would you rate")
            payloads = [b["payload"] for b in question.get("buttons", [])]
            assert len(payloads) == 5
            await me.say(payloads[3])
            await me.expect_text("thank you for your feedback")
            await me.say(payloads[0])  # a second tap does not count twice
            await me.expect_text("thank you for your feedback")

    run(scenario())
    entries = wait_for(
        lambda: [f for _, f in stack.redis_client().xrange(keys.CSAT) if f["conversation_id"] == sender], timeout=10
    )
    assert len(entries) == 1 and entries[0]["score"] == "4" and entries[0]["agent"] == "bob"


def test_two_agents_claiming_at_once_never_both_win(stack: Stack, agents: list[str]) -> None:
    from handoff.queue import Card

    rounds = 100
    stack.add_agent("carol", PASSWORD, capacity=rounds + 1)
    stack.add_agent("dave", PASSWORD, capacity=rounds + 1)

    async def scenario() -> list[tuple[int, int]]:
        from redis.asyncio import Redis

        from handoff.queue import Queue

        address = stack.settings.redis
        redis = Redis(host=address.host, port=address.port, db=address.db, password=address.password or None)
        queue = Queue(redis)
        outcomes = []
        async with (
            Agent(stack.console_url, "carol", PASSWORD) as carol,
            Agent(stack.console_url, "dave", PASSWORD) as dave,
        ):
            for index in range(rounds):
                conversation = f"race-{index}-{time.time_ns()}"
                assert await queue.enqueue(Card(conversation, "asked_for_human"))
                path = f"/api/chats/{conversation}/claim"
                # Alternate who sends first, so each side gets to win races.
                if index % 2:
                    (b, _), (a, _) = await asyncio.gather(dave.post(path), carol.post(path))
                else:
                    (a, _), (b, _) = await asyncio.gather(carol.post(path), dave.post(path))
                outcomes.append((a, b))
                winner = (await queue.get(conversation)).agent
                assert winner == ("carol" if a == 200 else "dave")
        await redis.close()
        return outcomes

    outcomes = run(scenario())
    assert all(sorted(pair) == [200, 409] for pair in outcomes), outcomes
    print(
        f"\n{rounds} rounds: carol won {sum(a == 200 for a, _ in outcomes)}, dave {sum(b == 200 for _, b in outcomes)}"
    )


def test_no_customer_message_is_lost_when_the_handoff_service_crashes(stack: Stack, agents: list[str]) -> None:
    sender = new_webchat_id()
    messages = [f"message {i} while the console is down" for i in range(5)]

    async def scenario() -> None:
        async with Customer(stack.settings.rasa_url, sender) as me:
            async with Agent(stack.console_url, "alice", PASSWORD) as alice:  # logging in puts her online
                await me.say("let me speak to a human agent")
                await me.expect_text("in the queue")
                assert (await alice.post(f"/api/chats/{sender}/claim"))[0] == 200
            stack.kill_handoff()
            for text in messages:
                await me.say(text)
            await asyncio.sleep(1)
            stack.start_handoff()
            async with Agent(stack.console_url, "alice", PASSWORD) as alice:
                await alice.connect()
                snapshot = await alice.expect_push(lambda p: p["type"] == "queue")
                unread = await wait_async(lambda: _unread(stack, sender))
                # Delivery is at least once: a message the service read just before the claim
                # may be counted too, but none of the five written while it was down is missing.
                assert unread >= len(messages), unread
                assert wait_for(lambda: _handled_by_the_service(stack, sender, messages), timeout=10)
                mine = [c for c in snapshot["mine"] if c["conversation_id"] == sender]
                assert mine, snapshot
                _status, chat = await alice.get(f"/api/chats/{sender}")
                said = [t["text"] for t in chat["transcript"] if t["role"] == "customer"]
                assert said[-len(messages) :] == messages
                assert (await alice.post(f"/api/chats/{sender}/close"))[0] == 200

    run(scenario())


def _unread(stack: Stack, sender: str) -> int:
    value = stack.redis_client().hget(keys.unread("alice"), sender)
    return int(value or 0)


async def wait_async(read, timeout: float = 20, want: int = 5) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    value = read()
    while value < want and loop.time() < deadline:
        await asyncio.sleep(0.2)
        value = read()
    return value


def test_waiting_customer_hears_when_their_place_in_the_queue_changes(
    stack: Stack, agents: list[str], nobody_waiting: None
) -> None:
    first, second = new_webchat_id(), new_webchat_id()

    async def scenario() -> None:
        async with (
            Agent(stack.console_url, "alice", PASSWORD) as alice,
            Customer(stack.settings.rasa_url, first) as one,
            Customer(stack.settings.rasa_url, second) as two,
        ):
            await one.say("I want to talk to a person")
            await one.expect_text("in the queue")
            await two.say("I want to talk to a person")
            told = await two.expect_text("in the queue")
            place = int(told["text"].split("number ")[1].split()[0])
            assert (await alice.post(f"/api/chats/{first}/claim"))[0] == 200
            await two.expect_text(f"You are now number {place - 1} in the queue")
            for conversation in (first,):
                assert (await alice.post(f"/api/chats/{conversation}/close"))[0] == 200

    run(scenario())


def test_restart_command_does_not_take_the_chat_away_from_the_agent(stack: Stack, agents: list[str]) -> None:
    sender = new_sender()
    assert "support team" in " ".join(m.get("text", "") for m in stack.say(sender, "I want to talk to a person"))
    assert stack.say(sender, "/restart") == []
    assert stack.say(sender, "how can I pay my bill?") == []  # still paused, waiting for a person
    events = stack.tracker(sender)["events"]
    assert not [e for e in events if e["event"] == "restart"]


def test_an_agent_whose_console_closes_is_no_longer_counted_online(stack: Stack, agents: list[str]) -> None:
    async def scenario() -> None:
        async with Agent(stack.console_url, "bob", PASSWORD) as bob:
            await bob.connect()
            await bob.expect_push(lambda p: p["type"] == "queue")
            assert (await bob.get("/api/me"))[1]["status"] == "online"
            await bob.disconnect()
            for _ in range(50):
                if (await bob.get("/api/me"))[1]["status"] == "away":
                    break
                await asyncio.sleep(0.1)
            assert (await bob.get("/api/me"))[1]["status"] == "away"
            await bob.connect()
            # The first queue push may be the one the closed console's handler broadcast, sent
            # to the new socket before its handler has set bob online again: wait for it.
            await bob.expect_push(lambda p: p["type"] == "queue")
            for _ in range(50):
                if (await bob.get("/api/me"))[1]["status"] == "online":
                    break
                await asyncio.sleep(0.1)
            assert (await bob.get("/api/me"))[1]["status"] == "online"

    run(scenario())


def _handled_by_the_service(stack: Stack, sender: str, texts: list[str]) -> bool:
    """Every stream entry carrying one of ``texts`` was read by the group and acknowledged."""
    client = stack.redis_client()
    entries = [
        (entry_id, json.loads(fields["data"]))
        for entry_id, fields in client.xrange(keys.EVENT_STREAM, "-", "+")
        if fields["sender_id"] == sender
    ]
    wanted = [entry_id for entry_id, event in entries if event.get("event") == "user" and event.get("text") in texts]
    assert len(wanted) == len(texts), wanted
    group = next(g for g in client.xinfo_groups(keys.EVENT_STREAM) if g["name"] == keys.EVENT_GROUP)
    pending = {p["message_id"] for p in client.xpending_range(keys.EVENT_STREAM, keys.EVENT_GROUP, "-", "+", 1000)}
    last = tuple(int(part) for part in group["last-delivered-id"].split("-"))
    return all(tuple(int(x) for x in e.split("-")) <= last and e not in pending for e in wanted)


def test_a_russian_customer_hears_the_queue_the_agent_and_the_bot_in_russian(stack: Stack, agents: list[str]) -> None:
    sender = new_webchat_id()

    async def scenario() -> None:
        async with (
            Agent(stack.console_url, "alice", PASSWORD) as alice,
            Customer(stack.settings.rasa_url, sender) as me,
        ):
            await me.say("позовите оператора, пожалуйста")
            await me.expect_text("в очереди")
            _, chat = await alice.get(f"/api/chats/{sender}")
            assert chat["card"]["language"] == "ru" and chat["card"]["reason"] == "asked_for_human"
            assert (await alice.post(f"/api/chats/{sender}/claim"))[0] == 200
            await me.expect_text("это alice из службы поддержки")
            assert (await alice.post(f"/api/chats/{sender}/handback"))[0] == 200
            await me.expect_text("Вы снова общаетесь с виртуальным помощником")

    run(scenario())
