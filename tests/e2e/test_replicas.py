"""Two replicas of every process behind a real HAProxy (tests/cluster.py), one Redis.

What must hold when a team runs two of everything: a reply reaches the widget whichever
Rasa process sends it; a widget that reconnects to the other node misses nothing; an agent
sees every customer message once, whichever replica's stream reader got it and whichever
replica their console is on; and killing one replica of each mid-conversation loses
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import uuid
from collections.abc import Iterator

import pytest
from redis import Redis

from bot.settings import ROOT, load_settings
from bot.train import train
from tests.cluster import Cluster, start_cluster
from tests.e2e.clients import WEBCHAT_SECRET, Agent, Customer
from tests.stack import REDIS_TEST_PASSWORD, REST_TOKEN, add_agent, rest_say

DB = 5  # a database of its own: the single-node stack uses 0
PASSWORD = "replica agent password"


@pytest.fixture(scope="module")
def cluster(redis_server: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    Redis(port=redis_server, db=DB, password=REDIS_TEST_PASSWORD).flushdb()
    var_dir = tmp_path_factory.mktemp("cluster")
    env = {
        "KB_DIR": str(ROOT / "data" / "faq"),
        "BUSINESS_HOURS_FILE": "always",
        "BOT_VAR_DIR": str(var_dir),
        "REDIS_URL": f"redis://:{REDIS_TEST_PASSWORD}@127.0.0.1:{redis_server}/{DB}",
        "REST_TOKEN": REST_TOKEN,
        "WEBCHAT_SECRET": WEBCHAT_SECRET,
        "RATE_LIMIT_ADDRESS": "100000/100000",
        "TURNS_PER_ADDRESS": "100",
        "STREAM_CLAIM_IDLE_SECONDS": "3",
        "PROXIES_COUNT": "1",  # one HAProxy in front  # a dead replica's unfinished events move on within a test
    }
    settings = load_settings(env, env_file=ROOT / "nonexistent")
    running = start_cluster(settings, train(quiet=True), var_dir / "log")
    try:
        for name in ("rita", "sam"):
            add_agent(running.settings, name, PASSWORD, capacity=5)
        yield running
    finally:
        running.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 300))


async def only_once(agent: Agent, conversation_id: str, texts: list[str], timeout: float = 30) -> None:
    """``agent``'s console gets a push for each of ``texts``, and no second one for any."""
    got: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while set(texts) - set(got) and (remaining := deadline - loop.time()) > 0:
        try:
            push = await asyncio.wait_for(agent.pushed.get(), remaining)
        except asyncio.TimeoutError:
            break
        if push.get("type") == "message" and push.get("conversation_id") == conversation_id:
            got.append(push["message"]["text"])
    await asyncio.sleep(1.5)  # a duplicate would arrive by now
    while not agent.pushed.empty():
        push = agent.pushed.get_nowait()
        if push.get("type") == "message" and push.get("conversation_id") == conversation_id:
            got.append(push["message"]["text"])
    mine = [t for t in got if t in texts]
    assert sorted(mine) == sorted(texts), f"{agent.name} on {agent.url}: {got}"


def test_replies_reach_the_widget_on_either_node_and_agents_on_either_node_see_each_message_once(
    cluster: Cluster,
) -> None:
    one, two = cluster.nodes
    conversation = f"webchat:{uuid.uuid4().hex}"
    rasa_before, console_before = cluster.served("rasa"), cluster.served("console")

    async def scenario() -> None:
        async with (
            Agent(one.console_url, "rita", PASSWORD) as rita_one,
            Agent(two.console_url, "rita", PASSWORD) as rita_two,
            Agent(cluster.console_url, "sam", PASSWORD) as sam,
        ):
            await rita_one.connect()
            await rita_two.connect()
            await sam.connect()
            async with Customer(one.rasa_url, conversation) as me:  # the widget is on node 1
                await me.say("hi")
                await me.expect_text("virtual assistant")
                await me.say("I want to talk to a human")
                await me.expect_text("in the queue")
                # Every console hears of the new chat, whichever node it is on.
                for agent in (rita_one, rita_two, sam):
                    await agent.expect_push(
                        lambda p: (
                            p["type"] == "queue" and any(c["conversation_id"] == conversation for c in p["waiting"])
                        )
                    )
                status, body = await rita_two.post(f"/api/chats/{conversation}/claim")  # through node 2's API
                assert status == 200, body
                await me.expect_text("this is rita")
                # Agent replies go through the balancer to either Rasa; each reaches the widget on node 1.
                for n in range(4):
                    status, body = await sam.post(f"/api/chats/{conversation}/reply", {"text": "x"})
                    assert status == 409, (status, body)  # not sam's chat
                    status, body = await rita_one.post(f"/api/chats/{conversation}/reply", {"text": f"reply {n}"})
                    assert status == 200, body
                for n in range(4):
                    await me.expect_text(f"reply {n}")
                # Customer messages: the two replicas' stream readers share them; each console of
                # rita, on either node, gets every one once.
                said = [f"my order is BL-{n}{uuid.uuid4().hex[:4]}" for n in range(6)]
                for text in said:
                    await me.say(text)
                await asyncio.gather(only_once(rita_one, conversation, said), only_once(rita_two, conversation, said))
            # The widget comes back on node 2 (a reload, or node 1 went away): nothing missed.
            async with Customer(two.rasa_url, conversation) as again:
                history = [t["text"] for t in again.history]
                for text in ["hi", "I want to talk to a human", *said, *(f"reply {n}" for n in range(4))]:
                    assert text in history, (text, history)
                status, body = await rita_one.post(f"/api/chats/{conversation}/reply", {"text": "still here?"})
                assert status == 200, body
                await again.expect_text("still here?")
                await again.say("yes, still here")
                await only_once(rita_one, conversation, ["yes, still here"])

    run(scenario())
    # The agents' calls were spread over both handoff services, and theirs over both Rasa servers.
    rasa, console = cluster.served("rasa"), cluster.served("console")
    assert all(rasa[s] > rasa_before[s] for s in rasa) and len(rasa) == 2, (rasa_before, rasa)
    assert all(console[s] > console_before[s] for s in console) and len(console) == 2, (console_before, console)


def test_behind_the_balancer_limits_count_each_customer_not_the_balancer(cluster: Cluster) -> None:
    """HAProxy is every customer's TCP peer; the per-address limits must see the customer's
    address it passes on (X-Forwarded-For), and never one the client wrote itself."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", cluster.settings.rasa_port, timeout=60, source_address=("127.0.0.2", 0)
    )
    body = json.dumps({"sender": f"xff-{uuid.uuid4().hex[:8]}", "message": "hi"})
    headers = {"Authorization": f"Bearer {REST_TOKEN}", "Content-Type": "application/json"}
    connection.request("POST", "/webhooks/rest/webhook", body, {**headers, "X-Forwarded-For": "198.51.100.66"})
    assert connection.getresponse().status == 200
    limited = set(Redis(port=cluster.settings.redis.port, db=DB, password=REDIS_TEST_PASSWORD).keys("ratelimit:*"))
    assert b"ratelimit:rest:address:127.0.0.2" in limited, limited
    assert not [k for k in limited if b"198.51.100.66" in k]


def test_killing_one_replica_of_each_mid_conversation_loses_nothing(cluster: Cluster) -> None:
    one = cluster.nodes[0]
    conversation = f"webchat:{uuid.uuid4().hex}"
    bot_user = f"replica-{uuid.uuid4().hex[:8]}"
    # A conversation with the bot alone, through the balancer, before and after.
    assert rest_say(cluster.rasa_url, bot_user, "how do I reset my password?")

    async def scenario() -> None:
        async with Agent(cluster.console_url, "sam", PASSWORD) as sam:
            await sam.connect()
            async with Customer(one.rasa_url, conversation) as me:
                await me.say("I want to talk to a human")
                await me.expect_text("in the queue")
                assert (await sam.post(f"/api/chats/{conversation}/claim"))[0] == 200
                await me.expect_text("this is sam")
                before = [f"before the crash {n}" for n in range(3)]
                for text in before:
                    await me.say(text)
                await only_once(sam, conversation, before)
                # One message on its way as node 1 dies: stored or not, the widget sends it again.
                inflight, client_id = "sent as the node died", uuid.uuid4().hex
                body = {"message": inflight, "session_id": conversation, "client_id": client_id}
                attempt = asyncio.create_task(me.sio.call("user_uttered", body, timeout=20))
                await asyncio.sleep(0.05)
                cluster.kill(0)  # node 1: its Rasa (the widget's), action server and handoff service
                with contextlib.suppress(Exception):
                    await attempt
            # The widget reconnects through the balancer; the console too.
            await sam.disconnect()
            await sam.connect()
            async with Customer(cluster.rasa_url, conversation) as back:
                history = [t["text"] for t in back.history]
                assert all(text in history for text in before), history
                await back.send_until_stored(inflight, client_id)
                after = [f"after the crash {n}" for n in range(3)]
                for text in after:
                    await back.send_until_stored(text)
                await only_once(sam, conversation, after)
                status, body = await sam.post(f"/api/chats/{conversation}/reply", {"text": "got them all"})
                assert status == 200, body
                await back.expect_text("got them all")
            status, chat = await sam.get(f"/api/chats/{conversation}")
            assert status == 200
            customer = [t["text"] for t in chat["transcript"] if t["role"] == "customer"]
            assert customer == ["I want to talk to a human", *before, inflight, *after]  # each once, in order

    try:
        run(scenario())
        # The bot alone: answered after the crash too (Rasa and the action server on node 2).
        answer = rest_say(cluster.rasa_url, bot_user, "my internet is not working")
        assert answer and answer[0].get("text")
    finally:
        cluster.restart(0)
