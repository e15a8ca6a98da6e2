"""The WhatsApp and Messenger channels without servers: who gets in, what the bot reads from
Meta's payloads, and what the customer is sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from bot.channels.messenger import MessengerInput, MessengerOutput, messenger_messages, parse_messenger
from bot.channels.meta import (
    ONLY_TEXT,
    Deduplicator,
    GraphApiError,
    Inbound,
    RetryLater,
    WebhookError,
    deliver,
    graph_error,
    parse_json,
    seen_key,
    sign,
    signature_is_valid,
    split_text,
    truncate,
    verify_subscription,
    with_agent_name,
)
from bot.channels.whatsapp import WhatsAppInput, WhatsAppOutput, parse_whatsapp, whatsapp_messages

SECRET = "app-secret"
BODY = b'{"object":"page","entry":[]}'
PAY = '/faq_choice{"faq_id": "billing-pay-bill", "faq_lang": "en"}'


def buttons(count: int, title: str = "Option") -> list[dict[str, str]]:
    return [{"title": f"{title} {n}", "payload": f"/choice_{n}"} for n in range(1, count + 1)]


# --- who gets in -----------------------------------------------------------------------


def test_a_correctly_signed_body_is_accepted() -> None:
    assert signature_is_valid(BODY, sign(BODY, SECRET), SECRET)
    assert signature_is_valid(BODY, sign(BODY, SECRET).upper().replace("SHA256=", "sha256="), SECRET)


@pytest.mark.parametrize(
    "header",
    [
        sign(BODY, "another-secret"),  # wrong secret
        sign(BODY + b" ", SECRET),  # body changed after signing
        sign(BODY, SECRET).replace("sha256=", "sha1="),  # wrong algorithm
        "sha256=",  # empty digest
        "sha256=" + "zz" * 32,  # not hex
        sign(BODY, SECRET)[:-2],  # cut short
        "garbage",
        "sha256=é" + "0" * 63,  # not ASCII: compare_digest would raise on it
        "",
        None,
    ],
)
def test_a_missing_malformed_or_wrong_signature_is_refused(header: str | None) -> None:
    assert not signature_is_valid(BODY, header, SECRET)


def test_without_an_app_secret_nothing_is_accepted() -> None:
    assert not signature_is_valid(BODY, sign(BODY, ""), "")


def test_webhook_verification_echoes_the_challenge_only_for_the_right_token() -> None:
    good = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "1158201444"}
    assert verify_subscription(good, "tok") == "1158201444"
    assert verify_subscription({**good, "hub.verify_token": "nope"}, "tok") is None
    assert verify_subscription({**good, "hub.mode": "unsubscribe"}, "tok") is None
    assert verify_subscription({k: v for k, v in good.items() if k != "hub.challenge"}, "tok") is None
    assert verify_subscription({**good, "hub.verify_token": ""}, "") is None  # no token configured


def test_malformed_json_is_a_400_with_a_clear_message() -> None:
    with pytest.raises(WebhookError) as error:
        parse_json(b'{"object": "page",')
    assert error.value.status == 400 and "JSON" in error.value.message
    with pytest.raises(WebhookError):
        parse_json(b"\xff\xfe")


# --- WhatsApp in -----------------------------------------------------------------------


def whatsapp_payload(*messages: dict, statuses: list | None = None, number_id: str = "123") -> dict:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": number_id},
        "contacts": [{"profile": {"name": "Zoe Example"}, "wa_id": "447911123456"}],
    }
    if messages:
        value["messages"] = list(messages)
    if statuses is not None:
        value["statuses"] = statuses
        value.pop("contacts")
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}],
    }


def wa(kind: str, content: dict | None = None, message_id: str = "wamid.1") -> dict:
    message = {"from": "447911123456", "id": message_id, "timestamp": "1700000000", "type": kind}
    if content is not None:
        message[kind] = content
    return message


def test_whatsapp_text_comes_in_with_the_number_and_profile_name() -> None:
    [message] = parse_whatsapp(whatsapp_payload(wa("text", {"body": "how can I pay my bill?"})), "123")
    assert message == Inbound("wamid.1", "447911123456", "how can I pay my bill?", "text", "Zoe Example")
    assert message.metadata() == {"customer_name": "Zoe Example"}


def test_whatsapp_button_and_list_replies_send_their_id_as_the_rasa_payload() -> None:
    button = wa("interactive", None)
    button["interactive"] = {"type": "button_reply", "button_reply": {"id": "/request_human", "title": "Talk to a…"}}
    row = wa("interactive", None, "wamid.2")
    row["interactive"] = {"type": "list_reply", "list_reply": {"id": PAY, "title": "How can I pay my bill?"}}
    parsed = parse_whatsapp(whatsapp_payload(button, row))
    assert [(m.text, m.kind) for m in parsed] == [("/request_human", "button_reply"), (PAY, "list_reply")]


def test_whatsapp_status_callbacks_are_not_messages() -> None:
    statuses = [{"id": "wamid.out", "status": "delivered", "recipient_id": "447911123456"}]
    assert parse_whatsapp(whatsapp_payload(statuses=statuses)) == []


@pytest.mark.parametrize(
    ("kind", "content"),
    [
        ("image", {"mime_type": "image/jpeg", "id": "media-1"}),
        ("location", {"latitude": 51.5, "longitude": -0.12}),
        ("sticker", {"mime_type": "image/webp", "id": "media-2", "animated": False}),
        ("audio", {"mime_type": "audio/ogg", "id": "media-3", "voice": True}),
        ("unsupported", None),
    ],
)
def test_whatsapp_non_text_messages_are_marked_for_the_text_only_answer(kind: str, content: dict | None) -> None:
    [message] = parse_whatsapp(whatsapp_payload(wa(kind, content)))
    assert message.text is None and message.kind == kind and message.sender_id == "447911123456"


def test_whatsapp_reactions_and_other_numbers_and_junk_are_ignored() -> None:
    assert parse_whatsapp(whatsapp_payload(wa("reaction", {"message_id": "wamid.0", "emoji": "👍"}))) == []
    assert parse_whatsapp(whatsapp_payload(wa("text", {"body": "hi"}), number_id="999"), "123") == []
    for junk in (None, [], "x", {"object": "page"}, {"object": "whatsapp_business_account", "entry": "x"}):
        assert parse_whatsapp(junk) == []
    broken = whatsapp_payload({"type": "text", "text": "not a dict"}, wa("text", {"body": "  "}))
    assert parse_whatsapp(broken) == []


# --- Messenger in ----------------------------------------------------------------------


def messenger_payload(*events: dict) -> dict:
    return {"object": "page", "entry": [{"id": "PAGE", "time": 1700000000000, "messaging": list(events)}]}


def fb(message: dict | None = None, **event: Any) -> dict:
    base: dict[str, Any] = {"sender": {"id": "7001"}, "recipient": {"id": "PAGE"}, "timestamp": 1700000000000}
    if message is not None:
        base["message"] = {"mid": "m_1", **message}
    return {**base, **event}


def test_messenger_text_quick_reply_and_postback_reach_rasa() -> None:
    parsed = parse_messenger(
        messenger_payload(
            fb({"text": "where is my order?"}),
            fb({"mid": "m_2", "text": "Talk to a person", "quick_reply": {"payload": "/request_human"}}),
            fb(postback={"mid": "m_3", "title": "Pay my bill", "payload": PAY}),
        )
    )
    assert [(m.message_id, m.sender_id, m.text, m.kind) for m in parsed] == [
        ("m_1", "7001", "where is my order?", "text"),
        ("m_2", "7001", "/request_human", "quick_reply"),
        ("m_3", "7001", PAY, "postback"),
    ]


def test_messenger_echoes_deliveries_and_reads_are_ignored() -> None:
    events = [
        fb({"text": "our own reply", "is_echo": True}),
        fb(delivery={"mids": ["m_9"], "watermark": 1}),
        fb(read={"watermark": 1}),
        fb(reaction={"mid": "m_9", "action": "react", "emoji": "❤"}),
    ]
    assert parse_messenger(messenger_payload(*events)) == []
    assert parse_messenger({"object": "instagram", "entry": []}) == []
    assert parse_messenger({"object": "page", "entry": [{"messaging": [None, 3, {"sender": "x"}]}]}) == []


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ({"attachments": [{"type": "image", "payload": {"url": "https://x/cat.jpg"}}]}, "image"),
        ({"attachments": [{"type": "location", "payload": {"coordinates": {"lat": 1, "long": 2}}}]}, "location"),
        (
            {"sticker_id": 369239263222822, "attachments": [{"type": "image", "payload": {"url": "https://x"}}]},
            "sticker",
        ),
    ],
)
def test_messenger_attachments_are_marked_for_the_text_only_answer(message: dict, kind: str) -> None:
    [parsed] = parse_messenger(messenger_payload(fb(message)))
    assert parsed.text is None and parsed.kind == kind


# --- WhatsApp out ----------------------------------------------------------------------


def test_whatsapp_text_is_one_message_and_long_text_is_split_at_4096() -> None:
    [message] = whatsapp_messages("447", "Hello")
    assert message["messaging_product"] == "whatsapp" and message["to"] == "447"
    assert message["type"] == "text" and message["text"]["body"] == "Hello"
    long = " ".join(["word"] * 2000)  # 9999 characters
    parts = whatsapp_messages("447", long)
    assert len(parts) == 3 and all(len(p["text"]["body"]) <= 4096 for p in parts)
    assert " ".join(p["text"]["body"] for p in parts) == long


def test_up_to_three_options_become_whatsapp_reply_buttons() -> None:
    [message] = whatsapp_messages("447", "Did you mean:", buttons(3))
    interactive = message["interactive"]
    assert message["type"] == "interactive" and interactive["type"] == "button"
    assert interactive["body"]["text"] == "Did you mean:"
    assert [b["reply"] for b in interactive["action"]["buttons"]] == [
        {"id": f"/choice_{n}", "title": f"Option {n}"} for n in (1, 2, 3)
    ]


def test_long_button_titles_are_cut_to_twenty_characters_with_an_ellipsis() -> None:
    options = [{"title": "How do I get a refund for an overpayment?", "payload": PAY}]
    [message] = whatsapp_messages("447", "Did you mean:", options)
    reply = message["interactive"]["action"]["buttons"][0]["reply"]
    assert reply["title"] == "How do I get a refu…" and len(reply["title"]) == 20
    assert reply["id"] == PAY
    assert truncate("short", 20) == "short"


def test_four_to_ten_options_become_a_whatsapp_list_with_full_titles_in_descriptions() -> None:
    options = [*buttons(6), {"title": "How do I get a refund for an overpayment or credit?", "payload": PAY}]
    [message] = whatsapp_messages("447", "Did you mean:", options)
    interactive = message["interactive"]
    assert interactive["type"] == "list" and interactive["body"]["text"] == "Did you mean:"
    assert len(interactive["action"]["button"]) <= 20
    rows = interactive["action"]["sections"][0]["rows"]
    assert len(rows) == 7 and rows[0] == {"id": "/choice_1", "title": "Option 1"}
    assert rows[-1]["id"] == PAY and len(rows[-1]["title"]) == 24 and rows[-1]["title"].endswith("…")
    assert rows[-1]["description"] == "How do I get a refund for an overpayment or credit?"


def test_more_than_ten_options_are_split_over_several_whatsapp_lists() -> None:
    messages = whatsapp_messages("447", "Pick a topic:", buttons(15))
    assert [m["interactive"]["type"] for m in messages] == ["list", "list"]
    rows = [[r["id"] for r in m["interactive"]["action"]["sections"][0]["rows"]] for m in messages]
    assert rows == [[f"/choice_{n}" for n in range(1, 11)], [f"/choice_{n}" for n in range(11, 16)]]
    assert messages[0]["interactive"]["body"]["text"] == "Pick a topic:"
    assert messages[1]["interactive"]["body"]["text"]


def test_text_too_long_for_an_interactive_body_is_sent_first_as_plain_text() -> None:
    text = "A long answer. " * 100  # 1500 characters
    messages = whatsapp_messages("447", text, buttons(2))
    assert [m["type"] for m in messages] == ["text", "interactive"]
    assert messages[0]["text"]["body"] == text.strip()
    assert 0 < len(messages[1]["interactive"]["body"]["text"]) <= 1024


def test_a_long_guide_step_keeps_its_question_with_the_buttons_that_answer_it() -> None:
    instruction = "Unplug the hub, wait thirty seconds and plug it back in. " * 20  # 1160 characters
    messages = whatsapp_messages("447", f"{instruction}\n\nIs the light white now?", buttons(3))
    assert [m["type"] for m in messages] == ["text", "interactive"]
    assert messages[0]["text"]["body"] == instruction.strip()
    assert messages[1]["interactive"]["body"]["text"] == "Is the light white now?"


def test_a_payload_too_long_for_whatsapp_is_replaced_by_the_title() -> None:
    [message] = whatsapp_messages("447", "Choose:", [{"title": "Pay my bill", "payload": "/x" + "y" * 300}])
    assert message["interactive"]["action"]["buttons"][0]["reply"]["id"] == "Pay my bill"


# --- Messenger out ---------------------------------------------------------------------


def test_messenger_text_is_a_response_message_and_long_text_is_split_at_2000() -> None:
    [message] = messenger_messages("7001", "Hello")
    assert message == {"recipient": {"id": "7001"}, "messaging_type": "RESPONSE", "message": {"text": "Hello"}}
    long = "\n".join(["a line of text that goes on"] * 200)
    parts = messenger_messages("7001", long)
    assert len(parts) == 3 and all(len(p["message"]["text"]) <= 2000 for p in parts)


def test_messenger_options_become_quick_replies_thirteen_at_a_time() -> None:
    [message] = messenger_messages("7001", "Did you mean:", buttons(4, "A rather long option title"))
    replies = message["message"]["quick_replies"]
    assert message["message"]["text"] == "Did you mean:" and len(replies) == 4
    assert replies[0] == {"content_type": "text", "title": "A rather long optio…", "payload": "/choice_1"}
    split = messenger_messages("7001", "Pick one:", buttons(15))
    assert [len(m["message"]["quick_replies"]) for m in split] == [13, 2]
    assert split[1]["message"]["text"]


# --- agent replies and delivery ---------------------------------------------------------


def test_an_agent_reply_starts_with_the_agent_name() -> None:
    assert with_agent_name("Sorry about that.", "alice") == "Alice: Sorry about that."
    assert with_agent_name("Sorry about that.", None) == "Sorry about that."
    assert with_agent_name("Sorry about that.", {"not": "a name"}) == "Sorry about that."


class RecordingGraph:
    """Stands in for :class:`GraphApi`; ``fail`` makes every call raise like Meta's 4xx does."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, dict, dict]] = []
        self.fail = fail

    async def post(self, path: str, body: dict, **auth: Any) -> dict:
        if self.fail:
            raise graph_error(400, path, {"error": {"message": "(#131047) Re-engagement message", "code": 131047}})
        self.calls.append((path, body, auth))
        return {}


def test_agent_replies_reach_whatsapp_and_messenger_with_the_name_and_token() -> None:
    graph = RecordingGraph()
    whatsapp = WhatsAppOutput(graph, "123", "wa-token")  # type: ignore[arg-type]
    messenger = MessengerOutput(graph, "page-token")  # type: ignore[arg-type]
    agent_reply = {"text": "Checking now.", "agent": "wendy", "timestamp": 1.0}
    asyncio.run(whatsapp.send_response("447", dict(agent_reply)))
    asyncio.run(messenger.send_response("7001", dict(agent_reply)))
    (wa_path, wa_body, wa_auth), (fb_path, fb_body, fb_auth) = graph.calls
    assert wa_path == "123/messages" and wa_auth == {"headers": {"Authorization": "Bearer wa-token"}}
    assert wa_body["to"] == "447" and wa_body["text"]["body"] == "Wendy: Checking now."
    assert fb_path == "me/messages" and fb_auth == {"params": {"access_token": "page-token"}}
    assert fb_body["recipient"] == {"id": "7001"} and fb_body["message"]["text"] == "Wendy: Checking now."


def test_a_graph_api_error_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    output = WhatsAppOutput(RecordingGraph(fail=True), "123", "wa-token")  # type: ignore[arg-type]
    asyncio.run(output.send_response("447", {"text": "hello"}))
    assert "Re-engagement message" in caplog.text and "131047" in caplog.text


def test_graph_errors_carry_metas_message() -> None:
    error = graph_error(401, "me/messages", {"error": {"message": "Invalid OAuth access token", "code": 190}})
    assert isinstance(error, GraphApiError) and error.status == 401 and error.code == 190
    assert "Invalid OAuth access token" in str(error) and "401" in str(error)
    assert "Bad Gateway" in str(graph_error(502, "x", "Bad Gateway"))


def test_split_text_prefers_paragraphs_then_lines_then_words() -> None:
    assert split_text("one\n\ntwo", 6) == ["one", "two"]
    assert split_text("aaa bbb\nccc", 8) == ["aaa bbb", "ccc"]
    assert split_text("x" * 10, 4) == ["xxxx", "xxxx", "xx"]


def test_empty_credentials_fall_back_to_metas_public_graph_api() -> None:
    channel = WhatsAppInput.from_credentials({"app_secret": "", "graph_api_url": "", "graph_api_version": None})
    assert channel.graph.url("123/messages") == "https://graph.facebook.com/v21.0/123/messages"
    channel = MessengerInput.from_credentials({"graph_api_url": "http://127.0.0.1:9/", "graph_api_version": "v1.0"})
    assert channel.graph.url("me/messages") == "http://127.0.0.1:9/v1.0/me/messages"


@pytest.fixture
def meta_redis(redis_server: int) -> Iterator[Callable[[], Redis]]:
    """Clients of a real Redis (one per ``asyncio.run``), emptied afterwards."""
    from tests.stack import REDIS_TEST_PASSWORD

    def client() -> Redis:
        return Redis(port=redis_server, db=12, password=REDIS_TEST_PASSWORD)

    yield client
    sync = SyncRedis(port=redis_server, db=12, password=REDIS_TEST_PASSWORD)
    sync.flushdb()
    sync.close()


def _marker(meta_redis: Callable[[], Redis], key: str) -> str | None:
    async def read() -> str | None:
        redis = meta_redis()
        value = await redis.get(key)
        await redis.close()
        return value.decode().split(":")[0] if value else None

    return asyncio.run(read())


def _deliver(meta_redis: Callable[[], Redis], channel: str, messages: list, output: Any, on_new_message: Any) -> None:
    async def run() -> None:
        redis = meta_redis()
        try:
            await deliver(
                messages,
                channel=channel,
                dedupe=Deduplicator(redis, channel),
                output=output,
                on_new_message=on_new_message,
            )
        finally:
            await redis.close()

    asyncio.run(run())


def test_a_message_is_handled_once_and_marked_done_only_after_rasa_handled_it(meta_redis) -> None:
    graph = RecordingGraph()
    output = WhatsAppOutput(graph, "123", "tok")  # type: ignore[arg-type]
    handled: list[str] = []
    states_seen: list[str | None] = []

    async def recording(message: Any) -> None:
        redis = meta_redis()
        value = await redis.get(seen_key("whatsapp", message.message_id))
        await redis.close()
        states_seen.append(value.decode().split(":")[0] if value else None)
        handled.append(message.text)
        assert message.sender_id == "whatsapp:447"  # the conversation id is namespaced

    message = Inbound("wamid.7", "447", "hello", "text", "Zoe")
    for _ in range(2):
        _deliver(meta_redis, "whatsapp", [message], output, recording)
    assert handled == ["hello"] and states_seen == ["in-flight"]
    assert _marker(meta_redis, "channel:seen:whatsapp:wamid.7") == "done"


def test_a_failed_message_is_released_so_metas_redelivery_handles_it(meta_redis) -> None:
    output = MessengerOutput(RecordingGraph(), "tok")  # type: ignore[arg-type]
    attempts: list[str] = []

    async def crashes_once(message: Any) -> None:
        attempts.append(message.text)
        if len(attempts) == 1:
            raise RuntimeError("lock store timeout")

    message = Inbound("m_1", "7001", "hello", "text")
    with pytest.raises(RetryLater) as raised:
        _deliver(meta_redis, "messenger", [message], output, crashes_once)
    assert raised.value.failed  # answered 503: our failure, not a busy signal
    assert _marker(meta_redis, "channel:seen:messenger:m_1") is None
    _deliver(meta_redis, "messenger", [message], output, crashes_once)
    assert attempts == ["hello", "hello"] and _marker(meta_redis, "channel:seen:messenger:m_1") == "done"


def test_a_redelivery_while_the_first_is_still_running_is_asked_to_come_back(meta_redis) -> None:
    output = WhatsAppOutput(RecordingGraph(), "123", "tok")  # type: ignore[arg-type]
    order: list[str] = []

    async def slow(message: Any) -> None:
        order.append("first started")
        await asyncio.sleep(0.5)
        order.append("first done")

    async def never(message: Any) -> None:
        raise AssertionError("handled twice")

    async def both() -> None:
        redis = meta_redis()
        message = Inbound("wamid.8", "447", "hi", "text")
        first = asyncio.ensure_future(
            deliver(
                [message],
                channel="whatsapp",
                dedupe=Deduplicator(redis, "whatsapp"),
                output=output,
                on_new_message=slow,
            )
        )
        await asyncio.sleep(0.1)
        with pytest.raises(RetryLater) as raised:
            await deliver(
                [message],
                channel="whatsapp",
                dedupe=Deduplicator(redis, "whatsapp"),
                output=output,
                on_new_message=never,
            )
        assert not raised.value.failed  # a 429: come back later
        await first
        await redis.close()

    asyncio.run(both())
    assert order == ["first started", "first done"]


def test_a_non_text_message_gets_the_text_only_answer_and_never_reaches_rasa(meta_redis) -> None:
    graph = RecordingGraph()
    output = WhatsAppOutput(graph, "123", "tok")  # type: ignore[arg-type]

    async def never(message: Any) -> None:
        raise AssertionError("passed to Rasa")

    _deliver(meta_redis, "whatsapp", [Inbound("wamid.9", "447", None, "image")], output, never)
    [(_, body, _)] = graph.calls
    assert body["to"] == "447" and body["text"]["body"] == ONLY_TEXT


def test_payload_round_trip_through_json_stays_intact() -> None:
    """The payload a button carries is exactly what a tap sends back."""
    [message] = whatsapp_messages("447", "Choose:", [{"title": "Pay", "payload": PAY}])
    row_id = message["interactive"]["action"]["buttons"][0]["reply"]["id"]
    assert json.loads(row_id.removeprefix("/faq_choice"))["faq_id"] == "billing-pay-bill"
