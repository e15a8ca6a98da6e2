"""Redis Sentinel: the primary dies mid-conversation, the sentinels promote its replica, and
every process (Rasa's tracker and lock stores, the event broker, the channels, the action
server, the handoff service) finds the new primary through them. The customer keeps writing
through the failover as the widget does (each message with an id, sent again until the
server says it is stored); what was lost in the window is counted, and must be nothing."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.processes import Process, action_server_process, handoff_process, rasa_process
from bot.settings import ROOT, Settings, load_settings
from bot.train import train
from tests.e2e.clients import WEBCHAT_SECRET, Agent, Customer
from tests.sentinel import SentinelSet, start_sentinels
from tests.stack import REST_TOKEN, add_agent, rest_say

PASSWORD = "failover agent password"
START_TIMEOUT = 300.0


@dataclass
class FailoverStack:
    settings: Settings
    redis: SentinelSet
    processes: list[Process]

    @property
    def rasa_url(self) -> str:
        return self.settings.rasa_url

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.handoff_port}"


@pytest.fixture(scope="module")
def failover(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FailoverStack]:
    from bot.processes import free_port

    folder = tmp_path_factory.mktemp("failover")
    redis_set = start_sentinels(folder / "redis", "failover-redis-password")
    env = {
        "KB_DIR": str(ROOT / "data" / "faq"),
        "BUSINESS_HOURS_FILE": "always",
        "BOT_VAR_DIR": str(folder),
        "RASA_PORT": str(free_port()),
        "ACTION_PORT": str(free_port()),
        "HANDOFF_PORT": str(free_port()),
        "REST_TOKEN": REST_TOKEN,
        "WEBCHAT_SECRET": WEBCHAT_SECRET,
        "RATE_LIMIT_ADDRESS": "100000/100000",
        "TURNS_PER_ADDRESS": "100",
        **redis_set.env,
    }
    settings = load_settings(env, env_file=ROOT / "nonexistent")
    token = uuid.uuid4().hex
    log_dir = folder / "log"
    processes = [
        action_server_process(settings, log_dir),
        rasa_process(settings, train(quiet=True), token, log_dir),
        handoff_process(settings, token, log_dir),
    ]
    try:
        for process in processes:
            process.start()
            process.wait_healthy(START_TIMEOUT)
        add_agent(settings, "fay", PASSWORD, capacity=5)
        yield FailoverStack(settings, redis_set, processes)
    finally:
        for process in reversed(processes):
            process.stop()
        redis_set.stop()


def test_the_primary_dies_mid_conversation_and_nothing_acknowledged_is_lost(failover: FailoverStack) -> None:
    conversation = f"webchat:{uuid.uuid4().hex}"
    alone = f"failover-{uuid.uuid4().hex[:8]}"
    assert rest_say(failover.rasa_url, alone, "how do I reset my password?")
    said = [f"message {n} about order BL-{uuid.uuid4().hex[:5]}" for n in range(24)]
    report: dict[str, float] = {}

    async def scenario() -> None:
        async with Agent(failover.console_url, "fay", PASSWORD) as fay:
            await fay.connect()
            async with Customer(failover.rasa_url, conversation) as me:
                await me.say("I want to talk to a human")
                await me.expect_text("in the queue")
                assert (await fay.post(f"/api/chats/{conversation}/claim"))[0] == 200
                await me.expect_text("this is fay")
                slowest = 0.0
                for n, text in enumerate(said):
                    started = time.monotonic()
                    sending = asyncio.create_task(me.send_until_stored(text, timeout=120))
                    if n == 8:  # the primary dies while this message is being handled
                        await asyncio.sleep(0.03)
                        killed = time.monotonic()
                        failover.redis.kill_primary()
                    await sending
                    slowest = max(slowest, time.monotonic() - started)
                    await asyncio.sleep(0.15)
                report["slowest_ack_s"] = slowest
                while failover.redis.master_port() != failover.redis.replica_port:
                    assert time.monotonic() - killed < 60, "no failover within 60 s"
                    await asyncio.sleep(0.2)
                # The agent's reply goes out through the new primary too.
                status, body = await fay.post(f"/api/chats/{conversation}/reply", {"text": "all received"})
                assert status == 200, body
                await me.expect_text("all received")
            status, chat = await fay.get(f"/api/chats/{conversation}")
            assert status == 200, chat
            customer = [t["text"] for t in chat["transcript"] if t["role"] == "customer"]
            lost = [text for text in said if text not in customer]
            twice = [text for text in said if customer.count(text) > 1]
            report["lost"], report["twice"] = len(lost), len(twice)
            assert not lost and not twice, (lost, twice, customer)
            assert customer == ["I want to talk to a human", *said]  # in order

    asyncio.run(asyncio.wait_for(scenario(), 300))
    # The bot alone, after the failover: Rasa, the action server and the stores on the new primary.
    answer = rest_say(failover.rasa_url, alone, "my internet is not working")
    assert answer and answer[0].get("text")
    print(f"failover: {report}")
    out = os.environ.get("FAILOVER_REPORT")
    if out:
        Path(out).write_text(repr(report), encoding="utf-8")
