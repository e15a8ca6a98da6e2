"""The WhatsApp and Messenger channels without servers: who gets in, what the bot reads from
Meta's payloads, and what the customer is sent."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from bot.channels import media
from bot.channels.guard import attachment_metadata, client_metadata
from bot.channels.media import (
    Download,
    FetchFailed,
    MediaReceiver,
    MediaRef,
    attachment_text,
    checked_mime,
    clean_name,
    media_ttl,
    name_from_url,
    refused_text,
)
from bot.channels.messenger import (
    MessengerInput,
    MessengerOutput,
    MessengerProfiles,
    attachment_fetcher,
    messenger_messages,
    parse_messenger,
    within_messenger_window,
)
from bot.channels.meta import (
    ONLY_TEXT,
    Deduplicator,
    GraphApi,
    GraphApiError,
    Inbound,
    Intake,
    OutsideWindow,
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
from bot.channels.whatsapp import (
    Template,
    WhatsAppInput,
    WhatsAppOutput,
    media_fetcher,
    outside_window,
    parse_whatsapp,
    template_message,
    whatsapp_messages,
)
from bot.channels.whatsapp import media_message as whatsapp_media
from bot.channels.window import ReplyWindow, last_inbound_key, window_state
from bot.processes import free_port, meta_channel_env
from bot.settings import Settings, SettingsError, load_settings
from tests.e2e import fake_graph
from tests.e2e.fake_graph import FakeGraphApi

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


def _deliver(
    meta_redis: Callable[[], Redis],
    channel: str,
    messages: list,
    output: Any,
    on_new_message: Any,
    intake: Callable[[Redis], Intake] | None = None,
) -> None:
    async def run() -> None:
        redis = meta_redis()
        try:
            await deliver(
                messages,
                channel=channel,
                dedupe=Deduplicator(redis, channel),
                output=output,
                on_new_message=on_new_message,
                intake=intake(redis) if intake else None,
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


# --- files customers send ----------------------------------------------------------------


def test_whatsapp_images_and_documents_carry_what_is_needed_to_fetch_them() -> None:
    image = wa("image", {"id": "1234", "mime_type": "image/jpeg", "sha256": "x", "caption": "the router"})
    document = wa("document", {"id": "5678", "mime_type": "application/pdf", "filename": "bill.pdf"}, "wamid.2")
    voice = wa("audio", {"id": "9012", "mime_type": "audio/ogg", "voice": True}, "wamid.3")
    parsed = parse_whatsapp(whatsapp_payload(image, document, voice))
    assert [m.media for m in parsed] == [
        MediaRef("image", "1234", mime="image/jpeg", caption="the router"),
        MediaRef("document", "5678", mime="application/pdf", name="bill.pdf"),
        MediaRef("audio", "9012", mime="audio/ogg"),
    ]
    assert all(m.text is None for m in parsed)  # outside a handoff: the text-only notice, as before


def test_messenger_attachments_are_one_message_each_with_one_text_only_notice() -> None:
    files = [
        {"type": "image", "payload": {"url": "https://cdn.example/v/t1/123_n.jpg?oh=sig"}},
        {"type": "file", "payload": {"url": "https://cdn.example/v/t59/456_n.pdf/My%20Bill.pdf?oh=sig"}},
        {"type": "location", "payload": {"coordinates": {"lat": 1, "long": 2}}},
    ]
    parsed = parse_messenger(messenger_payload(fb({"attachments": files})))
    assert [(m.message_id, m.kind, m.notify) for m in parsed] == [
        ("m_1", "image", True),
        ("m_1#1", "file", False),
        ("m_1#2", "location", False),
    ]
    assert parsed[0].media == MediaRef("image", files[0]["payload"]["url"], name="123_n.jpg")
    assert parsed[1].media == MediaRef("document", files[1]["payload"]["url"], name="My Bill.pdf")
    assert parsed[2].media is None


def test_file_names_are_cleaned_and_bounded_with_the_extension_kept() -> None:
    assert clean_name("../../etc/passwd") == "passwd"
    assert clean_name('C:\\Users\\me\\"bill"\x00.pdf') == "_bill_ .pdf"
    long = clean_name("x" * 300 + ".docx")
    assert len(long) == 100 and long.endswith(".docx")
    assert name_from_url("https://cdn.example/a/b/Invoice%20March.pdf?x=1") == "Invoice March.pdf"


@pytest.mark.parametrize(
    ("data", "declared", "name", "expected"),
    [
        (b"\xff\xd8\xff\xe0rest", "image/jpeg", "", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\nrest", "image/png; charset=binary", "", "image/png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp", "", "image/webp"),
        (b"%PDF-1.4 rest", "application/octet-stream", "bill.pdf", "application/pdf"),  # a CDN's generic type
        (
            b"PK\x03\x04rest",
            "",
            "notes.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (b"plain words", "text/plain", "", "text/plain"),
        (b"<html><script>alert(1)</script>", "image/png", "x.png", None),  # bytes disagree with the type
        (b"\xff\xd8\xff\xe0rest", "image/svg+xml", "x.svg", None),  # not an allowed type
        (b"MZ\x90\x00", "application/x-msdownload", "setup.exe", None),
        (b"binary\x00text", "text/plain", "a.txt", None),
    ],
)
def test_a_files_type_is_what_its_bytes_say_and_must_be_allowed(
    data: bytes, declared: str, name: str, expected: str | None
) -> None:
    assert checked_mime(data, [declared], name) == expected


def test_the_agent_reads_what_was_sent_with_its_caption() -> None:
    assert attachment_text("image", "", "my router") == "[image] my router"
    assert attachment_text("image", "IMG_1.jpg", "") == "[image]"
    assert attachment_text("document", "bill.pdf", "  march\nbill ") == "[document: bill.pdf] march bill"
    assert attachment_text("document", "", "") == "[document]"
    assert refused_text("image", "", "look", "too large") == "[image not received: too large] look"


def test_stored_files_live_as_long_as_conversations_or_thirty_days() -> None:
    assert media_ttl(0) == 30 * 86400
    assert media_ttl(7) == 7 * 86400
    assert media_ttl(0.5) == 43200


def test_attachment_metadata_is_cleaned_and_bounded_and_never_taken_from_a_client() -> None:
    good = {"id": "AbC_123-xyz456", "kind": "image", "mime": "image/png", "name": "a\x00b.png", "size": 10}
    assert attachment_metadata(good) == {**good, "name": "a b.png"}
    assert attachment_metadata({**good, "name": "n" * 500})["name"] == "n" * 100
    for bad in ({**good, "id": "../media"}, {**good, "size": -1}, {**good, "size": "10"}, {**good, "size": True}):
        assert attachment_metadata(bad) is None
    assert attachment_metadata("x") is None
    # A widget or REST caller cannot give itself an attachment: client metadata drops it.
    assert client_metadata({"attachment": good, "customer_name": "Zoe"}) == {"customer_name": "Zoe"}
    inbound = Inbound("wamid.1", "447", None, "image", "Zoe")
    assert inbound.metadata(good) == {"customer_name": "Zoe", "attachment": {**good, "name": "a b.png"}}
    assert inbound.metadata({"id": "x"}) == {"customer_name": "Zoe"}


# --- templates and windows ----------------------------------------------------------------


def test_a_whatsapp_template_carries_the_text_as_its_one_parameter() -> None:
    body = template_message("447", Template("agent_update", "en_GB"), "Wendy: line one\nline two   and more")
    assert body == {
        "messaging_product": "whatsapp",
        "to": "447",
        "type": "template",
        "template": {
            "name": "agent_update",
            "language": {"code": "en_GB"},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "Wendy: line one line two and more"}]}
            ],
        },
    }
    long = template_message("447", Template("t"), "word " * 500)["template"]["components"][0]["parameters"][0]
    assert len(long["text"]) <= 1024 and long["text"].endswith("…")


def test_outside_the_window_a_whatsapp_message_becomes_one_template_without_buttons() -> None:
    bodies = [*whatsapp_messages("447", "Which one?", buttons(3)), whatsapp_media("447", "https://x/a.png")]
    [template] = outside_window("447", [*whatsapp_messages("447", "Hello"), *bodies], Template("agent_update"))
    parameter = template["template"]["components"][0]["parameters"][0]["text"]
    assert parameter == "Hello Which one?" and template["template"]["language"] == {"code": "en_US"}
    with pytest.raises(OutsideWindow, match="WHATSAPP_TEMPLATE is not set"):
        outside_window("447", bodies, None)
    with pytest.raises(OutsideWindow, match="no text"):
        outside_window("447", [whatsapp_media("447", "https://x/a.png")], Template("agent_update"))


@pytest.mark.parametrize(
    ("age_hours", "state"),
    [(0, "open"), (23.9, "open"), (24, "human_agent"), (167.9, "human_agent"), (168, "closed"), (None, "closed")],
)
def test_the_reply_window_is_open_for_24_hours_and_the_human_agent_tag_for_7_days(
    age_hours: float | None, state: str
) -> None:
    now = 1_800_000_000.0
    assert window_state(None if age_hours is None else now - age_hours * 3600, now) == state


def test_messenger_bodies_are_tagged_after_24_hours_and_refused_after_7_days() -> None:
    bodies = messenger_messages("7001", "Update")
    assert within_messenger_window(bodies, "open") == bodies
    [tagged] = within_messenger_window(bodies, "human_agent")
    assert tagged["messaging_type"] == "MESSAGE_TAG" and tagged["tag"] == "HUMAN_AGENT"
    assert tagged["message"] == {"text": "Update"} and tagged["recipient"] == {"id": "7001"}
    with pytest.raises(OutsideWindow, match="7 days"):
        within_messenger_window(bodies, "closed")


class FixedWindow:
    """A :class:`ReplyWindow` that always answers ``state``."""

    def __init__(self, state: str) -> None:
        self.answer = state
        self.asked: list[str] = []

    async def state(self, local_id: str) -> str:
        self.asked.append(local_id)
        return self.answer


def test_a_late_whatsapp_reply_goes_out_as_the_template(caplog: pytest.LogCaptureFixture) -> None:
    graph, window = RecordingGraph(), FixedWindow("human_agent")
    output = WhatsAppOutput(graph, "123", "tok", window, Template("agent_update"))  # type: ignore[arg-type]
    asyncio.run(output.send_response("whatsapp:447", {"text": "Done.", "agent": "wendy", "buttons": buttons(2)}))
    [(_, body, _)] = graph.calls
    assert body["type"] == "template" and body["template"]["components"][0]["parameters"][0]["text"] == "Wendy: Done."
    assert window.asked == ["447"]


def test_without_a_template_a_late_whatsapp_reply_is_logged_naming_the_setting_and_not_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    graph = RecordingGraph()
    output = WhatsAppOutput(graph, "123", "tok", FixedWindow("closed"))  # type: ignore[arg-type]
    asyncio.run(output.send_text_message("447", "Are you there?"))
    assert graph.calls == []
    assert "message to 447 not delivered" in caplog.text and "WHATSAPP_TEMPLATE" in caplog.text


def test_messenger_sends_nothing_after_7_days(caplog: pytest.LogCaptureFixture) -> None:
    graph = RecordingGraph()
    output = MessengerOutput(graph, "tok", FixedWindow("closed"))  # type: ignore[arg-type]
    asyncio.run(output.send_text_message("7001", "Are you there?"))
    assert graph.calls == [] and "message to 7001 not delivered" in caplog.text


def test_the_last_message_time_only_moves_forward(meta_redis) -> None:
    async def run() -> tuple[float | None, str, str, float | None]:
        redis = meta_redis()
        window = ReplyWindow(redis, "whatsapp")
        unknown = await window.state("447")
        await window.record("447", at=2000.0)
        await window.record("447", at=1000.0)  # a late redelivery of an older message
        last = await window.last_inbound("447")
        await window.record("447")
        now_state = await window.state("447")
        ttl = await redis.ttl(last_inbound_key("whatsapp:447"))
        await redis.close()
        return last, unknown, now_state, ttl

    last, unknown, now_state, ttl = asyncio.run(run())
    assert unknown == "closed" and last == 2000.0 and now_state == "open" and 7 * 86400 < ttl <= 8 * 86400


# --- fetching and keeping files (a real HTTP fake of Meta, a real Redis) -------------------


@pytest.fixture(scope="module")
def fake_meta() -> Iterator[FakeGraphApi]:
    fake = FakeGraphApi()
    fake.start()
    yield fake
    fake.stop()


def _receive(
    meta_redis: Callable[[], Redis],
    fake: FakeGraphApi,
    fetch_with: Callable[[GraphApi], Any],
    ref: MediaRef,
    max_bytes: int = 1000,
    handoff: str | None = "assigned",
) -> tuple[Any, list[dict]]:
    """Run a :class:`MediaReceiver` against the fake for a new conversation whose handoff is
    in state ``handoff``; returns ((in handoff, received) or the exception, stored hashes)."""
    conversation = f"whatsapp:{uuid.uuid4().int % 10**12}"

    async def run() -> tuple[Any, list[dict]]:
        redis = meta_redis()
        graph = GraphApi(fake.url, fake_graph.VERSION)
        receiver = MediaReceiver(redis, fetch_with(graph), max_bytes=max_bytes, ttl_s=60)
        if handoff:
            await redis.hset(f"handoff:chat:{conversation}", mapping={"state": handoff, "card": '{"language": "ru"}'})
        try:
            in_handoff, language = await receiver.handoff_language(conversation)
            result: Any = (in_handoff, await receiver.receive(conversation, ref, language))
        except Exception as exc:
            result = exc
        found = [await redis.hgetall(key) async for key in redis.scan_iter("media:*")]
        stored = [fields for fields in found if fields[b"conversation"] == conversation.encode()]
        await graph.close()
        await redis.close()
        return result, stored

    return asyncio.run(run())


def whatsapp_fetch(graph: GraphApi) -> Any:
    return media_fetcher(graph, fake_graph.WHATSAPP_TOKEN)


def test_a_whatsapp_file_is_fetched_with_the_token_checked_and_stored(meta_redis, fake_meta) -> None:
    data = b"%PDF-1.5\n" + bytes(range(256)) * 2
    media_id = fake_meta.add_media(data, "application/pdf")
    ref = MediaRef("document", media_id, mime="application/pdf", name="a/bill.pdf", caption="March")
    (in_handoff, received), [stored] = _receive(meta_redis, fake_meta, whatsapp_fetch, ref)
    assert in_handoff and received.text == "[document: bill.pdf] March" and not received.reply
    assert received.attachment == {
        "id": received.attachment["id"],
        "kind": "document",
        "mime": "application/pdf",
        "name": "bill.pdf",
        "size": len(data),
    }
    assert stored[b"data"] == data and stored[b"mime"] == b"application/pdf" and stored[b"name"] == b"bill.pdf"
    assert stored[b"conversation"].startswith(b"whatsapp:") and stored[b"size"] == str(len(data)).encode()
    assert set(stored) == {b"data", b"mime", b"name", b"size", b"conversation", b"kind", b"at"}


def test_a_file_larger_than_declared_is_cut_off_while_reading(meta_redis, fake_meta) -> None:
    media_id = fake_meta.add_media(b"\xff\xd8\xff" + bytes(5000), "image/jpeg", declared_size=100)
    (_, received), stored = _receive(meta_redis, fake_meta, whatsapp_fetch, MediaRef("image", media_id))
    assert received.attachment is None and received.text == "[image not received: too large]"
    assert received.reply == media.TOO_LARGE["ru"].format(mb=media.megabytes(1000))  # the card's language
    assert stored == []
    assert fake_meta.calls_to(f"/whatsapp/media/{media_id}")  # it was downloading, and stopped


def test_a_messenger_file_is_capped_while_reading_without_a_declared_size(meta_redis, fake_meta) -> None:
    url = fake_meta.add_file(b"%PDF-" + bytes(5000), "application/pdf", "big.pdf")
    ref = MediaRef("document", url, name="big.pdf")
    (_, received), stored = _receive(meta_redis, fake_meta, attachment_fetcher, ref, max_bytes=2000)
    assert "too large" in received.text and stored == []


def test_an_image_that_is_not_one_is_refused(meta_redis, fake_meta) -> None:
    url = fake_meta.add_file(b"<svg onload=alert(1)>", "image/png", "cat.png")
    (_, received), stored = _receive(meta_redis, fake_meta, attachment_fetcher, MediaRef("image", url, name="cat.png"))
    assert received.text == "[image not received: type not allowed]" and stored == []
    assert received.reply == media.TYPE_REFUSED["ru"]


def test_audio_is_refused_without_downloading_anything(meta_redis, fake_meta) -> None:
    before = len(fake_meta.calls)
    (_, received), stored = _receive(meta_redis, fake_meta, whatsapp_fetch, MediaRef("audio", "123", mime="audio/ogg"))
    assert received.text == "[audio not received: type not allowed]" and stored == []
    assert len(fake_meta.calls) == before


def test_a_media_id_meta_no_longer_has_is_not_retried(meta_redis, fake_meta) -> None:
    (_, received), stored = _receive(meta_redis, fake_meta, whatsapp_fetch, MediaRef("image", "999999"))
    assert received.text == "[image not received: could not be fetched]" and stored == []
    assert received.reply == media.NOT_RECEIVED["ru"]


def test_meta_out_of_reach_makes_the_webhook_come_back_later(meta_redis, fake_meta) -> None:
    def unreachable(graph: GraphApi) -> Any:
        return media_fetcher(GraphApi(f"http://127.0.0.1:{free_port()}", "v21.0"), "tok")

    result, stored = _receive(meta_redis, fake_meta, unreachable, MediaRef("image", "123"))
    assert isinstance(result, FetchFailed) and result.transient and stored == []


def test_a_wrong_token_is_refused_by_the_fake_and_nothing_is_stored(meta_redis, fake_meta) -> None:
    media_id = fake_meta.add_media(b"\xff\xd8\xff" + bytes(10), "image/jpeg")
    wrong_token = lambda graph: media_fetcher(graph, "wrong-token")  # noqa: E731
    (_, received), stored = _receive(meta_redis, fake_meta, wrong_token, MediaRef("image", media_id))
    assert "could not be fetched" in received.text and stored == []


def test_the_handoff_state_decides_whether_files_are_passed_on(meta_redis, fake_meta) -> None:
    for state, expected in (("waiting", True), ("assigned", True), ("bot", False), ("closed", False), (None, False)):
        (in_handoff, _), _ = _receive(meta_redis, fake_meta, whatsapp_fetch, MediaRef("audio", "1"), handoff=state)
        assert in_handoff is expected, state


# --- Messenger names -----------------------------------------------------------------------


def test_a_messenger_name_is_looked_up_once_and_a_failure_is_remembered(
    meta_redis, fake_meta, caplog: pytest.LogCaptureFixture
) -> None:
    fake_meta.add_profile("1001", "Ana", "Kovač")

    async def run() -> list[str | None]:
        redis = meta_redis()
        graph = GraphApi(fake_meta.url, fake_graph.VERSION)
        names = MessengerProfiles(redis, graph, fake_graph.MESSENGER_TOKEN)
        found = [await names("1001"), await names("1001"), await names("2002"), await names("2002")]
        found.append(await names("../me"))  # not a PSID: not looked up
        await graph.close()
        await redis.close()
        return found

    assert asyncio.run(run()) == ["Ana Kovač", "Ana Kovač", None, None, None]
    assert len(fake_meta.calls_to(f"/{fake_graph.VERSION}/1001")) == 1
    assert len(fake_meta.calls_to(f"/{fake_graph.VERSION}/2002")) == 1
    assert caplog.text.count("no name for 2002") == 1


# --- settings --------------------------------------------------------------------------------


def test_media_and_template_settings_are_validated_by_name() -> None:
    def load(**env: str) -> Settings:
        return load_settings(env, env_file=Path("/nonexistent"))

    defaults = load()
    assert defaults.media_max_bytes == 10 * 1024 * 1024
    assert defaults.whatsapp_template == "" and defaults.whatsapp_template_language == "en_US"
    custom = load(MEDIA_MAX_BYTES="2048", WHATSAPP_TEMPLATE="agent_update", WHATSAPP_TEMPLATE_LANGUAGE="pt_BR")
    assert (custom.media_max_bytes, custom.whatsapp_template, custom.whatsapp_template_language) == (
        2048,
        "agent_update",
        "pt_BR",
    )
    assert meta_channel_env(custom)["WHATSAPP_TEMPLATE"] == "agent_update"
    for name, value in (
        ("MEDIA_MAX_BYTES", "10MB"),
        ("MEDIA_MAX_BYTES", "0"),
        ("WHATSAPP_TEMPLATE", "Agent Update"),
        ("WHATSAPP_TEMPLATE_LANGUAGE", "english"),
    ):
        with pytest.raises(SettingsError, match=name):
            load(**{name: value})


# --- a file's way from the webhook to Rasa ----------------------------------------------------


def _set(meta_redis: Callable[[], Redis], key: str, mapping: dict) -> None:
    async def run() -> None:
        redis = meta_redis()
        await redis.hset(key, mapping=mapping)
        await redis.close()

    asyncio.run(run())


class FetchStub:
    """A channel's fetch: ``data`` as ``mime``, or raises ``error``."""

    def __init__(self, data: bytes = b"", mime: str = "", error: Exception | None = None) -> None:
        self.data, self.mime, self.error = data, mime, error
        self.fetched: list[MediaRef] = []

    async def __call__(self, ref: MediaRef, max_bytes: int) -> Download:
        self.fetched.append(ref)
        if self.error:
            raise self.error
        return Download(self.data, self.mime)


def _intake(fetch: FetchStub) -> Callable[[Redis], Intake]:
    return lambda redis: Intake(window=ReplyWindow(redis, "whatsapp"), media=MediaReceiver(redis, fetch, ttl_s=60))


def test_during_a_handoff_an_image_reaches_rasa_with_its_attachment(meta_redis) -> None:
    _set(meta_redis, "handoff:chat:whatsapp:447", {"state": "assigned"})
    fetch = FetchStub(b"\xff\xd8\xff" + b"x" * 100, "image/jpeg")
    handed: list[Any] = []

    async def rasa(message: Any) -> None:
        handed.append(message)

    image = MediaRef("image", "1234", mime="image/jpeg", caption="my router")
    message = Inbound("wamid.m1", "447", None, "image", "Zoe", media=image)
    _deliver(meta_redis, "whatsapp", [message], WhatsAppOutput(RecordingGraph(), "1", "t"), rasa, _intake(fetch))
    [user] = handed
    assert user.text == "[image] my router" and user.sender_id == "whatsapp:447"
    attachment = user.metadata["attachment"]
    assert user.metadata["customer_name"] == "Zoe"
    assert (attachment["kind"], attachment["mime"], attachment["size"]) == ("image", "image/jpeg", 103)
    assert _marker(meta_redis, "channel:seen:whatsapp:wamid.m1") == "done"
    assert _marker(meta_redis, last_inbound_key("whatsapp:447")) is not None  # the window is open


def test_outside_a_handoff_nothing_is_fetched_and_the_text_only_notice_goes_out(meta_redis) -> None:
    fetch, graph = FetchStub(b"\xff\xd8\xff", "image/jpeg"), RecordingGraph()

    async def never(message: Any) -> None:
        raise AssertionError("passed to Rasa")

    message = Inbound("wamid.m2", "448", None, "image", media=MediaRef("image", "1234"))
    _deliver(meta_redis, "whatsapp", [message], WhatsAppOutput(graph, "1", "t"), never, _intake(fetch))
    assert fetch.fetched == [] and [body["text"]["body"] for _, body, _ in graph.calls] == [ONLY_TEXT]


def test_a_file_meta_cannot_give_right_now_is_asked_for_again(meta_redis) -> None:
    _set(meta_redis, "handoff:chat:whatsapp:449", {"state": "waiting"})
    fetch = FetchStub(error=FetchFailed("Graph API answered 503", transient=True))

    async def never(message: Any) -> None:
        raise AssertionError("passed to Rasa")

    message = Inbound("wamid.m3", "449", None, "image", media=MediaRef("image", "1234"))
    output = WhatsAppOutput(RecordingGraph(), "1", "t")
    with pytest.raises(RetryLater) as raised:
        _deliver(meta_redis, "whatsapp", [message], output, never, _intake(fetch))
    assert raised.value.failed  # 503: Meta delivers it again
    assert _marker(meta_redis, "channel:seen:whatsapp:wamid.m3") is None
