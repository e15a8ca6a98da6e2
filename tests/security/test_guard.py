"""The channel guard's parts against a real Redis: rate limits, the message ledger, the
per-address turn slots and text cleaning."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from bot.channels.guard import (
    AddressSlots,
    Busy,
    ChannelGuard,
    GuardSettings,
    MessageLedger,
    check_text,
    clean_text,
    client_metadata,
    conversation_id,
    local_id,
)
from bot.ratelimit import Limit, RateLimiter, parse_limit
from tests.stack import REDIS_TEST_PASSWORD

DB = 11


@pytest.fixture
def redis_port(redis_server: int) -> Iterator[int]:
    yield redis_server

    async def flush() -> None:
        client = Redis(port=redis_server, db=DB, password=REDIS_TEST_PASSWORD)
        await client.flushdb()
        await client.close()

    asyncio.run(flush())


def run(redis_port: int, scenario) -> object:
    async def main() -> object:
        redis = Redis(port=redis_port, db=DB, password=REDIS_TEST_PASSWORD)
        try:
            return await scenario(redis)
        finally:
            await redis.close()

    return asyncio.run(main())


def test_a_burst_is_allowed_then_one_per_interval_and_refusals_cost_nothing(redis_port: int) -> None:
    async def scenario(redis: Redis) -> tuple[list[bool], float, list[bool]]:
        limiter = RateLimiter(redis, "test", Limit(burst=3, per_minute=600))  # one per 100 ms
        first = [(await limiter.hit("a")).allowed for _ in range(6)]
        refused = await limiter.hit("a")
        await asyncio.sleep(0.25)
        later = [(await limiter.hit("a")).allowed for _ in range(3)]
        other = (await limiter.hit("b")).allowed
        return first, refused.retry_after, [*later, other]

    first, retry_after, later = run(redis_port, scenario)
    assert first == [True, True, True, False, False, False]
    assert 0 < retry_after <= 0.1
    # Refused hits did not push the next slot away: 250 ms bought two more.
    assert later == [True, True, False, True]


def test_limits_parse_and_refuse_nonsense() -> None:
    assert parse_limit("20/60", "X") == Limit(20, 60.0)
    for bad in ("20", "a/b", "0/10", "5/0", "-1/5"):
        with pytest.raises(ValueError, match="X"):
            parse_limit(bad, "X")


def test_the_ledger_counts_a_message_only_once_stored_and_lets_a_crashed_attempt_be_retried(redis_port: int) -> None:
    async def scenario(redis: Redis) -> list[str]:
        ledger = MessageLedger(redis, "webchat", lease_s=0.3)
        states = [await ledger.begin("webchat:x", "m1")]  # new
        states.append(await ledger.begin("webchat:x", "m1"))  # still in flight: come back
        await asyncio.sleep(0.4)  # the first attempt "crashed": its lease ran out
        states.append(await ledger.begin("webchat:x", "m1"))  # stale: look in the tracker
        await ledger.done("webchat:x", "m1")
        states.append(await ledger.begin("webchat:x", "m1"))  # done: a duplicate
        states.append(await ledger.begin("webchat:y", "m1"))  # another conversation's m1 is new
        # A live, slow attempt renews its lease: no retry may start meanwhile.
        await ledger.begin("webchat:x", "slow")

        async def slow() -> None:
            await asyncio.sleep(0.8)

        holding = asyncio.ensure_future(ledger.holding("webchat:x", "slow", slow()))
        await asyncio.sleep(0.6)
        states.append(await ledger.begin("webchat:x", "slow"))
        await holding
        return states

    assert run(redis_port, scenario) == ["new", "in-flight", "stale", "done", "new", "in-flight"]


def test_one_address_gets_one_turn_at_a_time_and_a_bounded_queue() -> None:
    async def scenario() -> tuple[int, int, list[str]]:
        slots = AddressSlots(per_address=1, max_waiting=2)
        running = peak = 0
        order: list[str] = []

        async def turn(name: str, address: str) -> None:
            nonlocal running, peak
            try:
                async with slots.turn(address):
                    running += 1
                    peak = max(peak, running)
                    order.append(name)
                    await asyncio.sleep(0.05)
                    running -= 1
            except Busy:
                order.append(f"{name}:busy")

        await asyncio.gather(*(turn(f"a{i}", "10.0.0.1") for i in range(4)), turn("b", "10.0.0.2"))
        return peak, len(slots._slots), order

    peak, left, order = asyncio.run(scenario())
    assert peak == 2  # one for 10.0.0.1 and one for 10.0.0.2, never two of the same
    # The fourth from 10.0.0.1 is refused at once; the waiting two go in arrival order.
    assert [o for o in order if o.startswith("a")] == ["a0", "a3:busy", "a1", "a2"] and "b" in order
    assert left == 0  # nothing kept per address once it is quiet


def test_text_is_cleaned_capped_and_explained() -> None:
    assert clean_text(" hi\x00 there\x1b\ud800 ") == "hi  there \ufffd"
    assert check_text("  \n\t").reason == "empty" and check_text(None).reason == "empty"
    long = check_text("слово " * 1000, max_chars=100)
    assert long.reason == "too_long" and "слишком длинное" in long.reply and "100" in long.reply
    assert check_text("ა" * 101, max_chars=100).reply.startswith("ეს შეტყობინება")
    assert check_text("x" * 10_000_000, max_chars=100).reason == "too_long"
    assert check_text("How do I pay?", max_chars=100).text == "How do I pay?"


def test_conversation_ids_are_namespaced_per_channel() -> None:
    assert conversation_id("whatsapp", "4915") == "whatsapp:4915"
    assert conversation_id("whatsapp", "whatsapp:4915") == "whatsapp:4915"
    assert local_id("whatsapp", "whatsapp:4915") == "4915"
    assert conversation_id("rest", "whatsapp:4915") == "rest:whatsapp:4915"  # never another channel's


def test_a_sender_over_the_limit_hears_when_to_come_back(redis_port: int) -> None:
    async def scenario(redis: Redis) -> list:
        guard = ChannelGuard(redis, "rest", GuardSettings(per_sender=Limit(2, 6), per_address=Limit(100, 600)))
        return [await guard.admit("rest:a", "10.0.0.1", "hello") for _ in range(3)]

    verdicts = run(redis_port, scenario)
    assert [v.ok for v in verdicts] == [True, True, False]
    assert verdicts[2].reason == "rate_limited" and verdicts[2].retry_after > 5 and "wait" in verdicts[2].reply


def test_a_client_says_only_what_it_may_about_its_message() -> None:
    # Found by fuzzing: metadata holding a lone surrogate made every save of the tracker
    # fail, so the widget was told "try again" for ever; and a client could set any field.
    raw = {
        "customer_name": " Zoë\ud800 ",
        "button_title": "x" * 500,
        "agent": "alice",
        "vip": True,
        "\ud85f": {"nested": ["\ud82e"]},
        "client_id": 7,
    }
    assert client_metadata(raw) == {"customer_name": "Zoë\ufffd", "button_title": "x" * 200}
    assert client_metadata(None) == {} and client_metadata(["customer_name"]) == {}
