"""WhatsApp and Messenger end to end: real, HMAC-signed webhooks to ``rasa run``, the real
action server and Redis, and the local fake Graph API in place of Meta, which checks the
access tokens and records everything the channels send."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import requests

from bot.channels.media import TOO_LARGE, media_key
from bot.channels.meta import ONLY_TEXT, sign
from bot.channels.window import last_inbound_key
from tests.e2e import fake_graph
from tests.e2e.clients import Agent
from tests.e2e.conftest import CHANNEL_SECRETS, Stack, wait_for
from tests.e2e.fake_graph import FakeGraphApi, Sent

WHATSAPP = "/webhooks/whatsapp/webhook"
MESSENGER = "/webhooks/messenger/webhook"
WA_SECRET = CHANNEL_SECRETS["WHATSAPP_APP_SECRET"]
FB_SECRET = CHANNEL_SECRETS["MESSENGER_APP_SECRET"]
PHONE_NUMBER_ID = CHANNEL_SECRETS["WHATSAPP_PHONE_NUMBER_ID"]
WA_PATH = f"/{fake_graph.VERSION}/{PHONE_NUMBER_ID}/messages"
FB_PATH = f"/{fake_graph.VERSION}/me/messages"
AGENT_PASSWORD = "whatsapp agent pw"
SIGNED = object()  # sign the body with the channel's real app secret


def new_number() -> str:
    return f"4479{random.randint(10**7, 10**8 - 1)}"


def new_psid() -> str:
    return f"7{random.randint(10**14, 10**15 - 1)}"


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def whatsapp_webhook(number: str, message: dict[str, Any], name: str = "Test Customer") -> dict[str, Any]:
    message = {"from": number, "id": new_id("wamid."), "timestamp": str(int(time.time())), **message}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": name}, "wa_id": number}],
        "messages": [message],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}],
    }


def whatsapp_text(number: str, text: str, name: str = "Test Customer") -> dict[str, Any]:
    return whatsapp_webhook(number, {"type": "text", "text": {"body": text}}, name)


def messenger_webhook(psid: str, **event: Any) -> dict[str, Any]:
    now = int(time.time() * 1000)
    messaging = {"sender": {"id": psid}, "recipient": {"id": "PAGE_ID"}, "timestamp": now, **event}
    return {"object": "page", "entry": [{"id": "PAGE_ID", "time": now, "messaging": [messaging]}]}


def messenger_text(psid: str, text: str) -> dict[str, Any]:
    return messenger_webhook(psid, message={"mid": new_id("m_"), "text": text})


def post(
    stack: Stack, path: str, payload: Any, secret: str, signature: Any = SIGNED, raw: bytes | None = None
) -> requests.Response:
    """POST a webhook the way Meta does: JSON body, ``X-Hub-Signature-256`` over the bytes."""
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if signature is SIGNED:
        headers["X-Hub-Signature-256"] = sign(body, secret)
    elif signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return requests.post(stack.settings.rasa_url + path, data=body, headers=headers, timeout=60)


def shown(sent: Sent) -> str:
    """The text a customer reads in one sent message, whatever its kind."""
    body = sent.body
    if isinstance(body.get("text"), dict):
        return body["text"]["body"]
    if body.get("type") == "interactive":
        return body["interactive"]["body"]["text"]
    return body.get("message", {}).get("text", "")


def wait_for_text(graph_api: FakeGraphApi, recipient: str, fragment: str, timeout: float = 30) -> Sent:
    found = wait_for(
        lambda: [s for s in graph_api.sent_to(recipient) if fragment.lower() in shown(s).lower()], timeout=timeout
    )
    assert found, (
        f"nothing containing {fragment!r} sent to {recipient}; got {[shown(s) for s in graph_api.sent_to(recipient)]}"
    )
    return found[0]


def assert_nothing_sent(graph_api: FakeGraphApi, recipient: str, seconds: float = 1.0) -> None:
    assert not wait_for(lambda: graph_api.sent_to(recipient), timeout=seconds), graph_api.sent_to(recipient)


def user_events(stack: Stack, sender: str) -> list[dict]:
    return [e for e in stack.tracker(sender)["events"] if e["event"] == "user"]


# --- the happy path ---------------------------------------------------------------------


def test_whatsapp_customer_gets_the_knowledge_base_answer(stack: Stack, graph_api: FakeGraphApi) -> None:
    number = new_number()
    answer = post(stack, WHATSAPP, whatsapp_text(number, "how can I pay my bill?", "Zoe Example"), WA_SECRET)
    assert answer.status_code == 200, answer.text
    sent = wait_for_text(graph_api, number, "direct debit")
    assert sent.path == WA_PATH  # the fake records only calls with the right Bearer token
    assert sent.body["messaging_product"] == "whatsapp" and sent.body["to"] == number
    [said] = user_events(stack, f"whatsapp:{number}")
    assert said["text"] == "how can I pay my bill?" and said["input_channel"] == "whatsapp"
    assert said["metadata"]["customer_name"] == "Zoe Example"


def test_messenger_customer_gets_the_knowledge_base_answer(stack: Stack, graph_api: FakeGraphApi) -> None:
    psid = new_psid()
    answer = post(stack, MESSENGER, messenger_text(psid, "how can I pay my bill?"), FB_SECRET)
    assert answer.status_code == 200, answer.text
    sent = wait_for_text(graph_api, psid, "direct debit")
    assert sent.path == FB_PATH  # the fake records only calls with the right page token
    assert sent.body["recipient"] == {"id": psid} and sent.body["messaging_type"] == "RESPONSE"
    [said] = user_events(stack, f"messenger:{psid}")
    assert said["text"] == "how can I pay my bill?" and said["input_channel"] == "messenger"


# --- who gets in ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "token"), [(WHATSAPP, "WHATSAPP_VERIFY_TOKEN"), (MESSENGER, "MESSENGER_VERIFY_TOKEN")]
)
def test_webhook_verification_echoes_the_challenge_only_for_the_right_token(
    stack: Stack, path: str, token: str
) -> None:
    url = stack.settings.rasa_url + path
    good = {"hub.mode": "subscribe", "hub.verify_token": CHANNEL_SECRETS[token], "hub.challenge": "1158201444"}
    answer = requests.get(url, params=good, timeout=10)
    assert answer.status_code == 200 and answer.text == "1158201444"
    for bad in ({**good, "hub.verify_token": "guess"}, {**good, "hub.mode": "unsubscribe"}, {}):
        assert requests.get(url, params=bad, timeout=10).status_code == 403


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(sign(b"some other body", WA_SECRET), id="wrong"),
        pytest.param(None, id="missing"),
        pytest.param("sha1=0123456789abcdef", id="malformed"),
        pytest.param("sha256=" + "zz" * 32, id="not-hex"),
    ],
)
def test_a_whatsapp_webhook_without_a_valid_signature_is_refused_and_not_processed(
    stack: Stack, graph_api: FakeGraphApi, signature: str | None
) -> None:
    number = new_number()
    answer = post(stack, WHATSAPP, whatsapp_text(number, "how can I pay my bill?"), WA_SECRET, signature)
    assert answer.status_code == 403 and "error" in answer.json()
    assert_nothing_sent(graph_api, number)
    assert user_events(stack, f"whatsapp:{number}") == []


def test_a_messenger_webhook_signed_with_another_secret_is_refused(stack: Stack, graph_api: FakeGraphApi) -> None:
    psid = new_psid()
    payload = messenger_text(psid, "how can I pay my bill?")
    for signature in (sign(json.dumps(payload).encode(), WA_SECRET), None):
        assert post(stack, MESSENGER, payload, FB_SECRET, signature).status_code == 403
    assert_nothing_sent(graph_api, psid)
    assert user_events(stack, f"messenger:{psid}") == []


# --- each message once ----------------------------------------------------------------


def test_the_same_whatsapp_webhook_delivered_twice_is_answered_once(stack: Stack, graph_api: FakeGraphApi) -> None:
    number = new_number()
    payload = whatsapp_text(number, "how can I pay my bill?")
    assert post(stack, WHATSAPP, payload, WA_SECRET).status_code == 200
    wait_for_text(graph_api, number, "direct debit")
    sent = len(graph_api.sent_to(number))
    assert post(stack, WHATSAPP, payload, WA_SECRET).status_code == 200  # Meta's redelivery
    assert not wait_for(lambda: len(graph_api.sent_to(number)) > sent, timeout=1.5)
    assert len(user_events(stack, f"whatsapp:{number}")) == 1


def test_a_messenger_redelivery_racing_the_first_delivery_is_handled_once(
    stack: Stack, graph_api: FakeGraphApi
) -> None:
    psid = new_psid()
    payload = messenger_text(psid, "how can I pay my bill?")
    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(lambda _: post(stack, MESSENGER, payload, FB_SECRET).status_code, range(2)))
    # The loser either saw it done (200) or still in flight (429: Meta delivers again later).
    assert statuses in ([200, 200], [200, 429]), statuses
    wait_for_text(graph_api, psid, "direct debit")
    assert post(stack, MESSENGER, payload, FB_SECRET).status_code == 200
    assert len(user_events(stack, f"messenger:{psid}")) == 1
    assert len([s for s in graph_api.sent_to(psid) if "direct debit" in shown(s).lower()]) == 1


# --- bad input never breaks anything --------------------------------------------------


@pytest.mark.parametrize(("path", "secret"), [(WHATSAPP, WA_SECRET), (MESSENGER, FB_SECRET)])
def test_malformed_json_is_400_and_an_oversized_body_is_413(stack: Stack, path: str, secret: str) -> None:
    answer = post(stack, path, None, secret, raw=b'{"object": "page", "entry": [')
    assert answer.status_code == 400 and "JSON" in answer.json()["error"]
    huge = json.dumps({"object": "page", "padding": "x" * 300_000}).encode()
    assert post(stack, path, None, secret, raw=huge).status_code == 413


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "just a string",
        {"object": "whatsapp_business_account"},
        {"object": "whatsapp_business_account", "entry": "x"},
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"messages": [{"type": "text"}]}}]}]},
        {"object": "page", "entry": [{"messaging": [{"sender": {}, "message": {"text": 5}}]}]},
    ],
)
def test_signed_junk_is_acknowledged_without_an_error(stack: Stack, payload: Any) -> None:
    for path, secret in ((WHATSAPP, WA_SECRET), (MESSENGER, FB_SECRET)):
        answer = post(stack, path, payload, secret)
        assert answer.status_code == 200, answer.text


def test_a_typed_payload_with_broken_json_is_answered_not_an_error(stack: Stack, graph_api: FakeGraphApi) -> None:
    number = new_number()
    answer = post(stack, WHATSAPP, whatsapp_text(number, '/faq_choice{"faq_id": '), WA_SECRET)
    assert answer.status_code == 200, answer.text
    assert wait_for(lambda: graph_api.sent_to(number))


# --- what the channels do with what they cannot read ----------------------------------


@pytest.mark.parametrize(
    "message",
    [
        {"type": "image", "image": {"mime_type": "image/jpeg", "id": "media-1", "sha256": "x"}},
        {"type": "location", "location": {"latitude": 51.5, "longitude": -0.12, "name": "Home"}},
        {"type": "sticker", "sticker": {"mime_type": "image/webp", "id": "media-2", "animated": False}},
    ],
    ids=["image", "location", "sticker"],
)
def test_whatsapp_non_text_gets_a_polite_text_only_answer_and_never_reaches_rasa(
    stack: Stack, graph_api: FakeGraphApi, message: dict
) -> None:
    number = new_number()
    assert post(stack, WHATSAPP, whatsapp_webhook(number, message), WA_SECRET).status_code == 200
    sent = wait_for_text(graph_api, number, "only read text")
    assert shown(sent) == ONLY_TEXT and sent.path == WA_PATH
    assert user_events(stack, f"whatsapp:{number}") == []


def test_messenger_attachment_gets_a_polite_text_only_answer(stack: Stack, graph_api: FakeGraphApi) -> None:
    psid = new_psid()
    image = {"mid": new_id("m_"), "attachments": [{"type": "image", "payload": {"url": "https://x.example/a.jpg"}}]}
    assert post(stack, MESSENGER, messenger_webhook(psid, message=image), FB_SECRET).status_code == 200
    assert shown(wait_for_text(graph_api, psid, "only read text")) == ONLY_TEXT
    assert user_events(stack, f"messenger:{psid}") == []


def test_status_callbacks_and_read_receipts_are_acknowledged_and_nothing_is_sent(
    stack: Stack, graph_api: FakeGraphApi
) -> None:
    number, psid = new_number(), new_psid()
    status = {"id": new_id("wamid."), "status": "read", "timestamp": "1700000000", "recipient_id": number}
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": PHONE_NUMBER_ID}, "statuses": [status]}
    payload = {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": value}]}]}
    assert post(stack, WHATSAPP, payload, WA_SECRET).status_code == 200
    read = messenger_webhook(psid, read={"watermark": 1700000000000})
    echo = messenger_webhook(psid, message={"mid": new_id("m_"), "text": "echo", "is_echo": True})
    assert post(stack, MESSENGER, read, FB_SECRET).status_code == 200
    assert post(stack, MESSENGER, echo, FB_SECRET).status_code == 200
    assert_nothing_sent(graph_api, number, 0.5)
    assert_nothing_sent(graph_api, psid, 0.5)
    assert user_events(stack, f"messenger:{psid}") == []


# --- options ----------------------------------------------------------------------------


def test_did_you_mean_is_an_interactive_list_on_whatsapp_and_a_tap_gets_the_answer(
    stack: Stack, graph_api: FakeGraphApi
) -> None:
    number = new_number()
    assert post(stack, WHATSAPP, whatsapp_text(number, "refund"), WA_SECRET).status_code == 200
    offer = wait_for_text(graph_api, number, "did you mean")
    interactive = offer.body["interactive"]
    if interactive["type"] == "list":
        choices = [(r["id"], r["title"]) for s in interactive["action"]["sections"] for r in s["rows"]]
        assert all(len(title) <= 24 for _, title in choices)
    else:
        choices = [(b["reply"]["id"], b["reply"]["title"]) for b in interactive["action"]["buttons"]]
        assert all(len(title) <= 20 for _, title in choices)
    ids = [choice_id for choice_id, _ in choices]
    assert "/request_human" in ids and any(i.startswith("/faq_choice") for i in ids)

    picked = next(i for i in ids if i.startswith("/faq_choice"))
    reply_type = "list_reply" if interactive["type"] == "list" else "button_reply"
    tap = {"type": "interactive", "interactive": {"type": reply_type, reply_type: {"id": picked, "title": "x"}}}
    before = len(graph_api.sent_to(number))
    assert post(stack, WHATSAPP, whatsapp_webhook(number, tap), WA_SECRET).status_code == 200
    assert wait_for(lambda: len(graph_api.sent_to(number)) > before)
    assert user_events(stack, f"whatsapp:{number}")[-1]["text"] == picked
    slots = stack.tracker(f"whatsapp:{number}")["slots"]
    assert slots["kb_last_match"]["id"] == json.loads(picked.removeprefix("/faq_choice"))["faq_id"]


def test_did_you_mean_is_quick_replies_on_messenger_and_a_tap_sends_the_payload(
    stack: Stack, graph_api: FakeGraphApi
) -> None:
    psid = new_psid()
    assert post(stack, MESSENGER, messenger_text(psid, "refund"), FB_SECRET).status_code == 200
    offer = wait_for_text(graph_api, psid, "did you mean")
    replies = offer.body["message"]["quick_replies"]
    assert all(r["content_type"] == "text" and len(r["title"]) <= 20 for r in replies)
    payloads = [r["payload"] for r in replies]
    assert "/request_human" in payloads and any(p.startswith("/faq_choice") for p in payloads)

    picked = next(p for p in payloads if p.startswith("/faq_choice"))
    tap = {"mid": new_id("m_"), "text": "When will I get my…", "quick_reply": {"payload": picked}}
    assert post(stack, MESSENGER, messenger_webhook(psid, message=tap), FB_SECRET).status_code == 200
    assert wait_for(lambda: user_events(stack, f"messenger:{psid}")[-1]["text"] == picked)


# --- human handoff ----------------------------------------------------------------------


def test_agent_reply_reaches_the_whatsapp_customer(stack: Stack, graph_api: FakeGraphApi) -> None:
    number = new_number()
    stack.add_agent("wendy", AGENT_PASSWORD)

    async def scenario() -> None:
        async with Agent(stack.console_url, "wendy", AGENT_PASSWORD) as wendy:  # logging in puts her online
            asks = whatsapp_text(number, "I want to talk to a person", "Priya Customer")
            answer = await asyncio.to_thread(post, stack, WHATSAPP, asks, WA_SECRET)
            assert answer.status_code == 200
            await asyncio.to_thread(wait_for_text, graph_api, number, "in the queue")
            status, chat = await wendy.get(f"/api/chats/whatsapp:{number}")
            assert status == 200 and chat["state"] == "waiting"
            assert chat["card"]["channel"] == "whatsapp" and chat["card"]["customer_name"] == "Priya Customer"
            assert (await wendy.post(f"/api/chats/whatsapp:{number}/claim"))[0] == 200
            greeting = await asyncio.to_thread(wait_for_text, graph_api, number, "this is wendy")
            assert shown(greeting).startswith("Wendy: ")
            reply = {"text": "Sorry for the wait, I'm checking your account now."}
            assert (await wendy.post(f"/api/chats/whatsapp:{number}/reply", reply))[0] == 200
            sent = await asyncio.to_thread(wait_for_text, graph_api, number, "checking your account")
            assert sent.path == WA_PATH and sent.body["to"] == number
            assert shown(sent) == "Wendy: Sorry for the wait, I'm checking your account now."
            assert (await wendy.post(f"/api/chats/whatsapp:{number}/close"))[0] == 200
            # The rating question reaches WhatsApp as a tappable list of 1-5.
            survey = await asyncio.to_thread(wait_for_text, graph_api, number, "how would you rate")
            assert survey.body["type"] == "interactive"
            rows = [r for section in survey.body["interactive"]["action"]["sections"] for r in section["rows"]]
            assert [r["title"] for r in rows] == ["1", "2", "3", "4", "5"]

    asyncio.run(asyncio.wait_for(scenario(), 120))


# --- files during a handoff -----------------------------------------------------------

MEDIA_AGENT = "mika"  # takes every chat these tests hand over
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
PDF = b"%PDF-1.7\n"


def raw_redis(stack: Stack) -> redis.Redis:
    """The stack's Redis with bytes kept as bytes (a stored file is not text)."""
    address = stack.settings.redis
    return redis.Redis(host=address.host, port=address.port, db=address.db, password=address.password)


def media_of(stack: Stack, conversation: str) -> list[dict[bytes, bytes]]:
    """Every file stored for a conversation (``media:*`` hashes naming it)."""
    client = raw_redis(stack)
    try:
        found = [client.hgetall(key) for key in client.scan_iter("media:*", count=1000)]
    finally:
        client.close()
    return [fields for fields in found if fields.get(b"conversation") == conversation.encode()]


def hand_over(stack: Stack, graph_api: FakeGraphApi, recipient: str, conversation: str, ask: Any) -> None:
    """The customer asks for a person (``ask`` posts that webhook) and an agent takes the chat."""
    stack.add_agent(MEDIA_AGENT, AGENT_PASSWORD, capacity=50)

    async def scenario() -> None:
        async with Agent(stack.console_url, MEDIA_AGENT, AGENT_PASSWORD) as agent:
            assert (await asyncio.to_thread(ask)).status_code == 200
            await asyncio.to_thread(wait_for_text, graph_api, recipient, "in the queue")
            assert (await agent.post(f"/api/chats/{conversation}/claim"))[0] == 200
            await asyncio.to_thread(wait_for_text, graph_api, recipient, f"this is {MEDIA_AGENT}")

    asyncio.run(asyncio.wait_for(scenario(), 120))
    client = raw_redis(stack)
    try:
        assert client.hget(f"handoff:chat:{conversation}", "state") == b"assigned"
    finally:
        client.close()


def whatsapp_handoff(stack: Stack, graph_api: FakeGraphApi) -> str:
    number = new_number()
    asks = whatsapp_text(number, "I want to talk to a person", "Ada Customer")
    hand_over(stack, graph_api, number, f"whatsapp:{number}", lambda: post(stack, WHATSAPP, asks, WA_SECRET))
    return number


def whatsapp_file(media_id: str, kind: str = "image", **content: str) -> dict[str, Any]:
    return {"type": kind, kind: {"id": media_id, "sha256": "x", **content}}


def test_an_image_a_whatsapp_customer_sends_during_a_handoff_reaches_the_agent(
    stack: Stack, graph_api: FakeGraphApi
) -> None:
    number = whatsapp_handoff(stack, graph_api)
    told = len(graph_api.sent_to(number))
    data = JPEG + os.urandom(50_000)
    media_id = graph_api.add_media(data, "image/jpeg")
    image = whatsapp_file(media_id, caption="The router's lights", mime_type="image/jpeg")
    answer = post(stack, WHATSAPP, whatsapp_webhook(number, image, "Ada Customer"), WA_SECRET)
    assert answer.status_code == 200, answer.text

    said = user_events(stack, f"whatsapp:{number}")[-1]
    assert said["text"] == "[image] The router's lights"
    attachment = said["metadata"]["attachment"]
    assert attachment["kind"] == "image" and attachment["mime"] == "image/jpeg" and attachment["size"] == len(data)
    assert said["metadata"]["customer_name"] == "Ada Customer"
    client = raw_redis(stack)
    try:
        stored = client.hgetall(media_key(attachment["id"]))
        ttl = client.ttl(media_key(attachment["id"]))
    finally:
        client.close()
    assert stored[b"data"] == data and stored[b"mime"] == b"image/jpeg" and stored[b"kind"] == b"image"
    assert stored[b"conversation"] == f"whatsapp:{number}".encode() and stored[b"size"] == str(len(data)).encode()
    assert float(stored[b"at"]) > time.time() - 60 and 29 * 86400 < ttl <= 30 * 86400  # RETENTION_DAYS is 0
    assert attachment["id"] != media_id  # our own id, never Meta's
    # Both Graph API calls, each with the WhatsApp token.
    [info] = graph_api.calls_to(f"/{fake_graph.VERSION}/{media_id}")
    [download] = graph_api.calls_to(f"/whatsapp/media/{media_id}")
    for call in (info, download):
        assert call.method == "GET" and call.status == 200
        assert call.authorization == f"Bearer {fake_graph.WHATSAPP_TOKEN}"
    assert len(graph_api.sent_to(number)) == told  # no answer from the bot: a person has the chat


def test_a_whatsapp_document_keeps_its_name_for_the_agent(stack: Stack, graph_api: FakeGraphApi) -> None:
    number = whatsapp_handoff(stack, graph_api)
    data = PDF + os.urandom(2000)
    media_id = graph_api.add_media(data, "application/pdf")
    document = whatsapp_file(media_id, "document", filename="../Invoice March.pdf", mime_type="application/pdf")
    assert post(stack, WHATSAPP, whatsapp_webhook(number, document), WA_SECRET).status_code == 200
    said = user_events(stack, f"whatsapp:{number}")[-1]
    assert said["text"] == "[document: Invoice March.pdf]"
    assert said["metadata"]["attachment"]["name"] == "Invoice March.pdf"
    [stored] = media_of(stack, f"whatsapp:{number}")
    assert stored[b"data"] == data and stored[b"kind"] == b"document" and stored[b"name"] == b"Invoice March.pdf"


def test_outside_a_handoff_an_image_gets_the_text_only_notice_and_nothing_is_stored(
    stack: Stack, graph_api: FakeGraphApi
) -> None:
    number = new_number()
    media_id = graph_api.add_media(JPEG + os.urandom(1000), "image/jpeg")
    image = whatsapp_file(media_id, caption="look", mime_type="image/jpeg")
    assert post(stack, WHATSAPP, whatsapp_webhook(number, image), WA_SECRET).status_code == 200
    assert shown(wait_for_text(graph_api, number, "only read text")) == ONLY_TEXT
    assert user_events(stack, f"whatsapp:{number}") == []
    assert media_of(stack, f"whatsapp:{number}") == []
    assert graph_api.calls_to(f"/{fake_graph.VERSION}/{media_id}") == []  # nothing even looked up


def test_an_oversized_file_is_refused_with_a_message_and_nothing_is_stored(
    stack: Stack, graph_api: FakeGraphApi
) -> None:
    number = whatsapp_handoff(stack, graph_api)
    limit = stack.settings.media_max_bytes
    media_id = graph_api.add_media(JPEG + bytes(limit), "image/jpeg")
    image = whatsapp_file(media_id, caption="my bill", mime_type="image/jpeg")
    assert post(stack, WHATSAPP, whatsapp_webhook(number, image), WA_SECRET).status_code == 200
    refusal = wait_for_text(graph_api, number, "too large")
    assert shown(refusal) == TOO_LARGE["en"].format(mb="10")
    assert media_of(stack, f"whatsapp:{number}") == []
    assert graph_api.calls_to(f"/whatsapp/media/{media_id}") == []  # the declared size was enough
    said = user_events(stack, f"whatsapp:{number}")[-1]  # the agent still sees what happened
    assert said["text"] == "[image not received: too large] my bill" and "attachment" not in said["metadata"]


def test_an_image_a_messenger_customer_sends_during_a_handoff_reaches_the_agent(
    stack: Stack, graph_api: FakeGraphApi
) -> None:
    psid = new_psid()
    graph_api.add_profile(psid, "Mia", "Lopez")
    asks = messenger_text(psid, "I want to talk to a person")
    hand_over(stack, graph_api, psid, f"messenger:{psid}", lambda: post(stack, MESSENGER, asks, FB_SECRET))
    data = b"\x89PNG\r\n\x1a\n" + os.urandom(30_000)
    url = graph_api.add_file(data, "image/png", "12345_n.png")
    image = {"mid": new_id("m_"), "attachments": [{"type": "image", "payload": {"url": url}}]}
    assert post(stack, MESSENGER, messenger_webhook(psid, message=image), FB_SECRET).status_code == 200

    said = user_events(stack, f"messenger:{psid}")[-1]
    assert said["text"] == "[image]" and said["metadata"]["customer_name"] == "Mia Lopez"
    attachment = said["metadata"]["attachment"]
    assert attachment["mime"] == "image/png" and attachment["size"] == len(data)
    client = raw_redis(stack)
    try:
        stored = client.hgetall(media_key(attachment["id"]))
    finally:
        client.close()
    assert stored[b"data"] == data and stored[b"mime"] == b"image/png"
    assert stored[b"conversation"] == f"messenger:{psid}".encode()
    [download] = [c for c in graph_api.calls if c.path.startswith("/cdn/") and c.path.endswith("/12345_n.png")]
    assert download.status == 200 and download.authorization is None  # a CDN link: no token sent


def test_a_messenger_customers_profile_name_reaches_the_transcript_and_is_looked_up_once(
    stack: Stack, graph_api: FakeGraphApi
) -> None:
    psid = new_psid()
    graph_api.add_profile(psid, "Jonas", "Bērziņš")
    for text in ("how can I pay my bill?", "thanks"):
        assert post(stack, MESSENGER, messenger_text(psid, text), FB_SECRET).status_code == 200
    said = user_events(stack, f"messenger:{psid}")
    assert [e["metadata"].get("customer_name") for e in said] == ["Jonas Bērziņš", "Jonas Bērziņš"]
    [lookup] = graph_api.calls_to(f"/{fake_graph.VERSION}/{psid}")  # the second message used the cache
    assert lookup.query["access_token"] == fake_graph.MESSENGER_TOKEN
    assert lookup.query["fields"] == "first_name,last_name"


def test_a_failed_profile_lookup_does_not_hold_up_the_message(stack: Stack, graph_api: FakeGraphApi) -> None:
    psid = new_psid()  # no profile: the fake answers Meta's "no profile" error
    assert post(stack, MESSENGER, messenger_text(psid, "how can I pay my bill?"), FB_SECRET).status_code == 200
    wait_for_text(graph_api, psid, "direct debit")
    [said] = user_events(stack, f"messenger:{psid}")
    assert "customer_name" not in said["metadata"]


# --- Meta's messaging windows ------------------------------------------------------------


def agent_says(stack: Stack, conversation: str, text: str, agent: str = "wendy") -> None:
    """An agent's reply, appended the way the handoff service does (handoff/rasa_api.py ``say``)."""
    url = f"{stack.settings.rasa_url}/conversations/{conversation}/tracker/events"
    params = {"token": stack.token, "execute_side_effects": "true", "output_channel": "latest"}
    event = {"event": "bot", "text": text, "timestamp": time.time(), "metadata": {"agent": agent}}
    answer = requests.post(url, params=params, json=[event], timeout=60)
    assert answer.status_code == 200, answer.text


def last_wrote(stack: Stack, graph_api: FakeGraphApi, recipient: str, conversation: str, hours: float) -> None:
    """Make the customer's last message ``hours`` old, for us and for the fake Meta alike."""
    at = time.time() - hours * 3600
    client = raw_redis(stack)
    try:
        client.set(last_inbound_key(conversation), f"{at:.3f}", ex=8 * 86400)
    finally:
        client.close()
    graph_api.customer_wrote(recipient, at)


def whatsapp_customer(stack: Stack, graph_api: FakeGraphApi) -> str:
    number = new_number()
    assert post(stack, WHATSAPP, whatsapp_text(number, "how can I pay my bill?"), WA_SECRET).status_code == 200
    wait_for_text(graph_api, number, "direct debit")
    return number


def messenger_customer(stack: Stack, graph_api: FakeGraphApi) -> str:
    psid = new_psid()
    assert post(stack, MESSENGER, messenger_text(psid, "how can I pay my bill?"), FB_SECRET).status_code == 200
    wait_for_text(graph_api, psid, "direct debit")
    return psid


def rasa_log(stack: Stack) -> str:
    return (stack.log_dir / "rasa.log").read_text(errors="replace")


def test_an_agent_reply_within_24_hours_reaches_whatsapp_as_text(stack: Stack, graph_api: FakeGraphApi) -> None:
    number = whatsapp_customer(stack, graph_api)
    last_wrote(stack, graph_api, number, f"whatsapp:{number}", hours=23)
    agent_says(stack, f"whatsapp:{number}", "Your refund is on its way.")
    sent = wait_for_text(graph_api, number, "refund is on its way")
    assert sent.body["type"] == "text" and shown(sent) == "Wendy: Your refund is on its way."


def test_without_a_template_a_late_whatsapp_reply_is_not_sent_and_is_logged(
    stack: Stack, graph_api: FakeGraphApi
) -> None:
    number = whatsapp_customer(stack, graph_api)
    before = len(graph_api.sent_to(number))
    last_wrote(stack, graph_api, number, f"whatsapp:{number}", hours=25)
    agent_says(stack, f"whatsapp:{number}", "Are you still there?")
    assert wait_for(lambda: f"message to {number} not delivered" in rasa_log(stack), timeout=10)
    assert "WHATSAPP_TEMPLATE is not set" in rasa_log(stack)
    assert len(graph_api.sent_to(number)) == before
    assert graph_api.refused_to(number) == []  # never sent for Meta to refuse
    bot_texts = [e.get("text") for e in stack.tracker(f"whatsapp:{number}")["events"] if e["event"] == "bot"]
    assert "Are you still there?" in bot_texts  # the transcript keeps it
    client = raw_redis(stack)
    try:  # and the agents see on the chat that it did not arrive, and why
        notes = [json.loads(n) for n in client.lrange(f"handoff:notes:whatsapp:{number}", 0, -1)]
    finally:
        client.close()
    assert any(
        n["text"].startswith("Not delivered to the customer") and "WHATSAPP_TEMPLATE" in n["text"] for n in notes
    )


def test_messenger_replies_carry_the_human_agent_tag_after_24_hours_and_stop_after_7_days(
    stack: Stack, graph_api: FakeGraphApi
) -> None:
    psid = messenger_customer(stack, graph_api)
    conversation = f"messenger:{psid}"
    last_wrote(stack, graph_api, psid, conversation, hours=2)
    agent_says(stack, conversation, "First update.")
    assert wait_for_text(graph_api, psid, "first update").body["messaging_type"] == "RESPONSE"
    last_wrote(stack, graph_api, psid, conversation, hours=30)
    agent_says(stack, conversation, "Second update.")
    tagged = wait_for_text(graph_api, psid, "second update").body
    assert tagged["messaging_type"] == "MESSAGE_TAG" and tagged["tag"] == "HUMAN_AGENT"
    last_wrote(stack, graph_api, psid, conversation, hours=8 * 24)
    agent_says(stack, conversation, "Third update.")
    assert wait_for(lambda: f"message to {psid} not delivered" in rasa_log(stack), timeout=10)
    assert not [s for s in graph_api.sent_to(psid) if "third update" in shown(s).lower()]
    assert graph_api.refused_to(psid) == []


TEMPLATE = "agent_update"


@pytest.fixture
def whatsapp_template(stack: Stack) -> Any:
    """Rasa restarted with WHATSAPP_TEMPLATE set (and back without it afterwards)."""
    original = stack.settings
    stack.settings = dataclasses.replace(original, whatsapp_template=TEMPLATE, whatsapp_template_language="en_GB")
    stack.restart_rasa()
    try:
        yield TEMPLATE
    finally:
        stack.settings = original
        stack.restart_rasa()


def test_a_late_agent_reply_reaches_whatsapp_as_the_approved_template(
    stack: Stack, graph_api: FakeGraphApi, whatsapp_template: str
) -> None:
    number = whatsapp_customer(stack, graph_api)
    last_wrote(stack, graph_api, number, f"whatsapp:{number}", hours=30)
    long_reply = "Your replacement router ships today.\n\n" + "More details follow. " * 80
    agent_says(stack, f"whatsapp:{number}", long_reply)
    sent = wait_for(lambda: [s for s in graph_api.sent_to(number) if s.body.get("type") == "template"], timeout=30)
    assert sent, [s.body for s in graph_api.sent_to(number)]
    body = sent[0].body
    assert body["messaging_product"] == "whatsapp" and body["to"] == number
    template = body["template"]
    assert template["name"] == whatsapp_template and template["language"] == {"code": "en_GB"}
    [component] = template["components"]
    [parameter] = component["parameters"]
    assert component["type"] == "body" and parameter["type"] == "text"
    assert parameter["text"].startswith("Wendy: Your replacement router ships today. More details follow.")
    assert len(parameter["text"]) <= 1024 and parameter["text"].endswith("…") and "\n" not in parameter["text"]
    assert graph_api.refused_to(number) == []
    # Within the window again (the customer answered), replies are plain text once more.
    assert post(stack, WHATSAPP, whatsapp_text(number, "great, thanks"), WA_SECRET).status_code == 200
    graph_api.customer_wrote(number, time.time())
    agent_says(stack, f"whatsapp:{number}", "You're welcome.")
    assert wait_for_text(graph_api, number, "you're welcome").body["type"] == "text"


def test_a_messenger_customer_sees_the_agent_typing(stack: Stack, graph_api: FakeGraphApi) -> None:
    """The agent types in the console: Messenger shows "typing" (sender_action typing_on)."""
    psid = new_psid()
    asks = messenger_text(psid, "I want to talk to a person")
    hand_over(stack, graph_api, psid, f"messenger:{psid}", lambda: post(stack, MESSENGER, asks, FB_SECRET))

    async def scenario() -> None:
        async with Agent(stack.console_url, MEDIA_AGENT, AGENT_PASSWORD) as agent:
            await agent.connect()
            await agent.ws.send_json({"type": "typing", "conversation_id": f"messenger:{psid}"})
            typing = await asyncio.to_thread(
                wait_for, lambda: [s for s in graph_api.sent_to(psid) if s.body.get("sender_action") == "typing_on"]
            )
            assert typing and "message" not in typing[0].body

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_a_whatsapp_customer_sees_the_agent_typing(stack: Stack, graph_api: FakeGraphApi) -> None:
    """WhatsApp's typing indicator answers the customer's latest message (and marks it read)."""
    number = new_number()
    message = {
        "id": new_id("wamid."),
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": "I want to talk to a person"},
    }
    asks = whatsapp_webhook(number, message)
    hand_over(stack, graph_api, number, f"whatsapp:{number}", lambda: post(stack, WHATSAPP, asks, WA_SECRET))

    async def scenario() -> None:
        async with Agent(stack.console_url, MEDIA_AGENT, AGENT_PASSWORD) as agent:
            await agent.connect()
            await agent.ws.send_json({"type": "typing", "conversation_id": f"whatsapp:{number}"})

            def indicators() -> list[Sent]:
                return [s for s in graph_api.sent if s.body.get("typing_indicator")]

            typing = await asyncio.to_thread(
                wait_for, lambda: [s for s in indicators() if s.body.get("message_id") == message["id"]]
            )
            assert typing[0].body["status"] == "read" and "to" not in typing[0].body

    asyncio.run(asyncio.wait_for(scenario(), 120))
