"""The attacks of issue 8 on the customer channels, replayed against the real stack.

Each test is an attack that worked before: it must fail now.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from bot.channels.meta import sign
from tests.e2e.clients import Customer
from tests.e2e.conftest import CHANNEL_SECRETS, REST_TOKEN, Stack, new_sender, wait_for

WHATSAPP = "/webhooks/whatsapp/webhook"
MESSENGER = "/webhooks/messenger/webhook"


def rest(stack: Stack, body: object, token: str | None = REST_TOKEN, **headers: str) -> requests.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(stack.rest_url, data=json.dumps(body), headers=headers, timeout=60)


def user_texts(stack: Stack, conversation: str) -> list[str]:
    return [e["text"] for e in stack.tracker(conversation)["events"] if e["event"] == "user"]


def whatsapp_text(number: str, text: str) -> dict:
    message = {"from": number, "id": f"wamid.{uuid.uuid4().hex}", "timestamp": "1700000000", "type": "text"}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": "15550001111",
            "phone_number_id": CHANNEL_SECRETS["WHATSAPP_PHONE_NUMBER_ID"],
        },
        "contacts": [{"profile": {"name": "Victim"}, "wa_id": number}],
        "messages": [{**message, "text": {"body": text}}],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }


def post_signed(stack: Stack, path: str, body: bytes, secret: str) -> requests.Response:
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, secret)}
    return requests.post(stack.settings.rasa_url + path, data=body, headers=headers, timeout=60)


# --- private conversations --------------------------------------------------------------


def test_a_visitor_cannot_open_someone_elses_webchat_conversation(stack: Stack) -> None:
    async def scenario() -> tuple[str, str]:
        async with Customer(stack.settings.rasa_url) as victim:
            await victim.say("How can I pay my bill?")
            await victim.expect_text("direct debit")
            await victim.say("my account number is 4455-1234")
            await victim.expect(lambda m: bool(m.get("text")), what="any answer")
            victim_id = victim.session_id
        # The attacker knows (or guesses) the victim's id, but not the token.
        for forged in ("", "0" * 64, "not-a-token"):
            async with Customer(stack.settings.rasa_url, victim_id, forged) as attacker:
                assert attacker.session_id != victim_id  # given a new session of their own
                assert attacker.history == []  # nothing of the victim's transcript
                attacker_id = attacker.session_id
                # A message naming the victim's session still lands in the attacker's own.
                ack = await attacker.sio.call(
                    "user_uttered", {"message": "injected", "session_id": victim_id}, timeout=60
                )
                assert ack["ok"] is True
        return victim_id, attacker_id

    victim_id, attacker_id = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert user_texts(stack, victim_id) == ["How can I pay my bill?", "my account number is 4455-1234"]
    assert user_texts(stack, attacker_id) == ["injected"]


def test_a_webchat_visitor_cannot_reach_a_whatsapp_conversation(stack: Stack) -> None:
    number = f"49{uuid.uuid4().int % 10**10:010d}"
    body = json.dumps(whatsapp_text(number, "my card ends in 9876")).encode()
    assert post_signed(stack, WHATSAPP, body, CHANNEL_SECRETS["WHATSAPP_APP_SECRET"]).status_code == 200
    assert wait_for(lambda: user_texts(stack, f"whatsapp:{number}"))

    async def scenario() -> None:
        for claimed in (number, f"whatsapp:{number}"):
            async with Customer(stack.settings.rasa_url, claimed, "") as attacker:
                assert attacker.session_id.startswith("webchat:") and attacker.history == []
                await attacker.sio.call("user_uttered", {"message": "hello", "session_id": claimed}, timeout=60)

    asyncio.run(asyncio.wait_for(scenario(), 120))
    assert user_texts(stack, f"whatsapp:{number}") == ["my card ends in 9876"]


def test_the_rest_channel_needs_its_token_and_keeps_to_its_own_conversations(stack: Stack) -> None:
    body = {"sender": new_sender(), "message": "How can I pay my bill?"}
    assert rest(stack, body, token=None).status_code == 403
    assert rest(stack, body, token="wrong").status_code == 403
    assert rest(stack, body, token=REST_TOKEN + "x").status_code == 403
    assert requests.post(stack.rest_url, params={"token": REST_TOKEN}, json=body, timeout=30).status_code == 403
    # No shared "default" conversation, and no way to name another channel's.
    assert rest(stack, {"message": "hi"}).status_code == 400
    number = f"49{uuid.uuid4().int % 10**10:010d}"
    for sender in (f"whatsapp:{number}", "webchat:" + "a" * 32, "../x", "a" * 65):
        answer = rest(stack, {"sender": sender, "message": "hi"})
        assert answer.status_code == 400, sender
    assert stack.tracker(f"whatsapp:{number}")["events"] == [] or not user_texts(stack, f"whatsapp:{number}")
    answer = rest(stack, body)
    assert answer.status_code == 200 and "direct debit" in answer.text.lower()
    assert user_texts(stack, f"rest:{body['sender']}") == ["How can I pay my bill?"]


def test_cors_does_not_reflect_a_foreign_origin(stack: Stack) -> None:
    evil = "https://evil.example"
    preflight = requests.options(
        stack.rest_url,
        headers={
            "Origin": evil,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
        timeout=10,
    )
    assert preflight.headers.get("Access-Control-Allow-Origin") not in (evil, "*")
    answer = rest(stack, {"sender": new_sender(), "message": "hi"}, Origin=evil)
    assert answer.headers.get("Access-Control-Allow-Origin") not in (evil, "*")


# --- bounded input ------------------------------------------------------------------------


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_huge_messages_are_refused_politely_before_nlu(stack: Stack, graph_api) -> None:
    assert stack.rasa.pid is not None
    before = _rss_kb(stack.rasa.pid)
    sender = new_sender()
    started = time.monotonic()
    huge = rest(stack, {"sender": sender, "message": "a " * 500_000})  # 1 MB
    assert huge.status_code == 413
    limit = stack.settings.max_message_chars
    long = rest(stack, {"sender": sender, "message": "word " * limit})
    assert long.status_code == 413 and "too long" in long.json()["error"] and str(limit) in long.json()["error"]
    assert time.monotonic() - started < 10
    assert user_texts(stack, f"rest:{sender}") == []
    # Rasa did not grow: the message never reached DIET (it once grew from 1 GB to 15.6 GB).
    after = _rss_kb(stack.rasa.pid)
    print(f"\nRasa RSS around a 1 MB message: {before / 1024:.0f} MB -> {after / 1024:.0f} MB")
    assert after - before < 100_000
    # Just under the cap is an ordinary message.
    ok = rest(stack, {"sender": sender, "message": "How can I pay my bill? " + "x" * (limit - 40)})
    assert ok.status_code == 200

    async def widget() -> dict:
        async with Customer(stack.settings.rasa_url) as customer:
            return await customer.sio.call("user_uttered", {"message": "ab " * limit, "client_id": "big"}, timeout=30)

    ack = asyncio.run(asyncio.wait_for(widget(), 60))
    assert ack["ok"] is False and ack["reason"] == "too_long" and "too long" in ack["error"]

    number = f"49{uuid.uuid4().int % 10**10:010d}"
    body = json.dumps(whatsapp_text(number, "Привет " * limit)).encode()
    assert post_signed(stack, WHATSAPP, body, CHANNEL_SECRETS["WHATSAPP_APP_SECRET"]).status_code == 200
    sent = wait_for(
        lambda: [c for c in graph_api.sent_to(number) if "слишком длинное" in json.dumps(c.body, ensure_ascii=False)]
    )
    assert sent, graph_api.sent_to(number)
    assert user_texts(stack, f"whatsapp:{number}") == []


def test_empty_control_and_surrogate_messages_are_handled_and_stored_safely(stack: Stack) -> None:
    sender = new_sender()
    for blank in ("", "   ", "\n\t", "\x00\x01\x07", None, 42, ["hi"]):
        answer = rest(stack, {"sender": sender, "message": blank})
        assert answer.status_code == 400, (blank, answer.text)
    assert user_texts(stack, f"rest:{sender}") == []
    # A lone surrogate once made the tracker unsavable; now it is replaced and the turn works.
    raw = b'{"sender": "%s", "message": "how can I pay my bill? \\ud800"}' % sender.encode()
    answer = requests.post(stack.rest_url, data=raw, headers={"Authorization": f"Bearer {REST_TOKEN}"}, timeout=60)
    assert answer.status_code == 200 and "direct debit" in answer.text.lower()
    answer = rest(stack, {"sender": sender, "message": "pay\x00 my\x1b bill"})
    assert answer.status_code == 200
    assert user_texts(stack, f"rest:{sender}") == ["how can I pay my bill? \ufffd", "pay  my  bill"]
    assert "Great" not in json.dumps(answer.json())


def test_deeply_nested_signed_json_is_a_400_not_a_500(stack: Stack) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    for path, secret in ((WHATSAPP, "WHATSAPP_APP_SECRET"), (MESSENGER, "MESSENGER_APP_SECRET")):
        answer = post_signed(stack, path, body, CHANNEL_SECRETS[secret])
        assert answer.status_code == 400, answer.text
    nested = b'{"sender": "x", "message": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    assert rest(stack, json.loads(b"{}")).status_code == 400
    answer = requests.post(stack.rest_url, data=nested, headers={"Authorization": f"Bearer {REST_TOKEN}"}, timeout=30)
    assert answer.status_code == 400


# --- rate limits --------------------------------------------------------------------------


def test_a_flooding_sender_is_slowed_and_another_customer_is_not(stack: Stack) -> None:
    flooder, other = new_sender(), new_sender()
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda i: rest(stack, {"sender": flooder, "message": f"spam {i}"}), range(40)))
    codes = [a.status_code for a in answers]
    assert codes.count(429) >= 40 - stack.settings.rate_limit_sender.burst - 2, codes
    refused = [a for a in answers if a.status_code == 429]
    assert all(int(a.headers["Retry-After"]) >= 1 for a in refused)
    # A refusal is held back for a moment: a flood slows itself down.
    assert all(a.elapsed.total_seconds() >= 0.1 for a in refused)
    assert sorted(a.elapsed.total_seconds() for a in refused)[len(refused) // 2] >= 0.5
    stored = user_texts(stack, f"rest:{flooder}")
    assert len(stored) == codes.count(200)  # every accepted message is stored, every refused one is not
    answer = rest(stack, {"sender": other, "message": "How can I pay my bill?"})
    assert answer.status_code == 200 and "direct debit" in answer.text.lower()

    async def widget() -> list[dict]:
        async with Customer(stack.settings.rasa_url) as customer:
            return [
                await customer.sio.call("user_uttered", {"message": f"spam {i}", "client_id": f"f{i}"}, timeout=60)
                for i in range(stack.settings.rate_limit_sender.burst + 3)
            ]

    acks = asyncio.run(asyncio.wait_for(widget(), 240))
    refused = [a for a in acks if not a["ok"]]
    assert refused and all(a["reason"] == "rate_limited" and a["retry_after"] >= 1 for a in refused)


# --- nothing acknowledged and then lost ---------------------------------------------------


def test_a_retried_rest_message_is_stored_once(stack: Stack) -> None:
    sender = new_sender()
    body = {"sender": sender, "message": "How can I pay my bill?", "message_id": "m-1"}
    first, second = rest(stack, body), rest(stack, body)
    assert first.status_code == 200 and "direct debit" in first.text.lower()
    assert second.status_code == 200 and second.headers.get("X-Duplicate") == "1"
    assert user_texts(stack, f"rest:{sender}") == ["How can I pay my bill?"]


def test_redis_outage_is_an_honest_try_again_and_nothing_is_lost(stack: Stack) -> None:
    sender = new_sender()
    assert rest(stack, {"sender": sender, "message": "hello"}).status_code == 200
    stack.stop_redis()
    try:
        answers = [
            rest(stack, {"sender": sender, "message": f"during outage {i}", "message_id": f"o{i}"}) for i in range(3)
        ]
        assert [a.status_code for a in answers] == [503, 503, 503], [a.text for a in answers]
        assert all("try again" in a.json()["error"].lower() for a in answers)
        # Health tells the truth while Redis is away.
        for url in health_urls(stack):
            assert requests.get(url, timeout=10).status_code == 503, url
    finally:
        stack.start_redis()
    # The client retries with the same ids once Redis is back: each stored exactly once.
    retried = wait_for(
        lambda: rest(stack, {"sender": sender, "message": "during outage 0", "message_id": "o0"}).status_code == 200,
        timeout=30,
        interval=1,
    )
    assert retried
    for i in (1, 2):
        assert (
            rest(stack, {"sender": sender, "message": f"during outage {i}", "message_id": f"o{i}"}).status_code == 200
        )
    assert user_texts(stack, f"rest:{sender}") == ["hello", "during outage 0", "during outage 1", "during outage 2"]
    for url in health_urls(stack):  # and says so once everyone has reconnected
        assert wait_for(lambda u=url: requests.get(u, timeout=10).status_code == 200, timeout=30, interval=0.5), url


def health_urls(stack: Stack) -> list[str]:
    rasa = stack.settings.rasa_url
    actions = stack.settings.action_url.removesuffix("/webhook")
    return [f"{rasa}/webhooks/rest/", f"{rasa}/webhooks/whatsapp/", f"{actions}/health", f"{stack.console_url}/health"]


def test_the_widget_keeps_a_message_through_a_redis_outage_and_delivers_it_once(stack: Stack) -> None:
    """In a real browser: typed while Redis is down, the message waits (the server said
    "try again later"), then goes out by itself once Redis is back, and is stored once."""
    from tests.e2e.test_widget import WAIT_MS, ask, messages, open_widget, run, user_texts, widget_browser

    async def scenario() -> None:
        async with widget_browser() as browser:
            page = browser.page
            sender = await open_widget(page, stack)
            await ask(page, "How can I pay my bill?")
            await messages(page, "bot", "direct debit").wait_for(timeout=WAIT_MS)
            # Not in a worker thread: a child dies with the thread that started it (PDEATHSIG).
            stack.stop_redis()
            try:
                mine = await ask(page, "where is my order?")
                await asyncio.sleep(3)
                assert await mine.get_attribute("data-state") == "pending"  # kept, not failed
            finally:
                stack.start_redis()
            await (
                page.locator('[data-testid="blw-message"][data-role="customer"][data-state="sent"]')
                .filter(has_text="where is my order?")
                .wait_for(timeout=WAIT_MS)
            )
            assert await user_texts(stack, sender) == ["How can I pay my bill?", "where is my order?"]

    run(scenario)
