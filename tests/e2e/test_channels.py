"""WhatsApp and Messenger end to end: real, HMAC-signed webhooks to ``rasa run``, the real
action server and Redis, and the local fake Graph API in place of Meta, which checks the
access tokens and records everything the channels send."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from bot.channels.meta import ONLY_TEXT, sign
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
    message = {"from": number, "id": new_id("wamid."), "timestamp": "1700000000", **message}
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
    messaging = {"sender": {"id": psid}, "recipient": {"id": "PAGE_ID"}, "timestamp": 1700000000000, **event}
    return {"object": "page", "entry": [{"id": "PAGE_ID", "time": 1700000000000, "messaging": [messaging]}]}


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
