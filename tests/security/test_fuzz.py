"""Fuzzing the customer-facing endpoints of the real stack with hypothesis.

Each endpoint gets at least 500 generated requests (``FUZZ_EXAMPLES`` raises it): arbitrary
bytes, arbitrary JSON, and JSON shaped like the real thing with hostile values (huge,
empty, control characters, lone surrogates, wrong types, deep nesting). Whatever comes in,
no answer is a 5xx, and a refused request (any 4xx) changes nothing: no tracker, no event
on the stream, no de-duplication marker.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.channels.meta import sign
from tests.e2e.conftest import CHANNEL_SECRETS, REST_TOKEN, Stack

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "500"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases in CI every time; FUZZ_EXAMPLES widens the search
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)

hostile_text = st.one_of(
    st.text(max_size=50),
    st.text(alphabet=st.characters(codec=None, categories=["Cc", "Cs", "Zs", "Cf"]), max_size=20),
    st.sampled_from(["", " ", "\x00", "\ud800", "/restart", "/faq_choice{", "x" * 5000, "<script>alert(1)</script>"]),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), hostile_text)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=20,
)


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()  # ensure_ascii: a lone surrogate travels as \\ud800


class Footprint:
    """What a request could leave behind: trackers, stream events, dedup markers."""

    def __init__(self, stack: Stack) -> None:
        self.redis = stack.redis_client()

    def __call__(self) -> tuple[int, int, int]:
        trackers = sum(1 for _ in self.redis.scan_iter("brightline:tracker:*", count=1000))
        seen = sum(1 for _ in self.redis.scan_iter("channel:seen:*", count=1000))
        return trackers, self.redis.xlen("brightline:events"), seen


@pytest.fixture
def http() -> requests.Session:
    with requests.Session() as session:
        yield session


def check(answer: requests.Response, before: tuple, footprint: Footprint, what: Any) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text[:300], repr(what)[:300])
    if 400 <= answer.status_code < 500 and answer.status_code != 429:
        assert footprint() == before, ("a refused request changed state", answer.status_code, repr(what)[:300])


rest_bodies = st.one_of(
    st.binary(max_size=300).map(lambda b: ("raw", b)),
    json_values.map(lambda v: ("json", v)),
    st.fixed_dictionaries(
        {"sender": st.one_of(hostile_text, st.integers(), st.none()), "message": st.one_of(hostile_text, json_values)},
        optional={"message_id": st.one_of(hostile_text, st.integers()), "metadata": json_values},
    ).map(lambda v: ("json", v)),
)


def test_rest_channel_survives_fuzzing(stack: Stack, http: requests.Session) -> None:
    footprint = Footprint(stack)

    @FUZZ
    @given(body=rest_bodies, token=st.sampled_from([REST_TOKEN, REST_TOKEN, "", "nope"]))
    def case(body: tuple[str, Any], token: str) -> None:
        kind, value = body
        data = value if kind == "raw" else encode(value)
        before = footprint()
        answer = http.post(stack.rest_url, data=data, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        check(answer, before, footprint, value)
        if token != REST_TOKEN:
            assert answer.status_code == 403

    case()


def meta_bodies(kind: str) -> st.SearchStrategy:
    if kind == "whatsapp":
        message = st.fixed_dictionaries(
            {"from": hostile_text, "id": hostile_text, "type": st.sampled_from(["text", "image", "interactive", "x"])},
            optional={"text": st.fixed_dictionaries({"body": hostile_text}), "interactive": json_values},
        )
        value = st.fixed_dictionaries({"messages": st.lists(message, max_size=2)}, optional={"contacts": json_values})
        change = st.fixed_dictionaries({"field": st.just("messages"), "value": value})
        shaped = st.fixed_dictionaries(
            {
                "object": st.just("whatsapp_business_account"),
                "entry": st.lists(st.fixed_dictionaries({"changes": st.lists(change, max_size=2)}), max_size=2),
            }
        )
    else:
        event = st.fixed_dictionaries(
            {"sender": st.fixed_dictionaries({"id": hostile_text})},
            optional={"message": json_values, "postback": json_values, "timestamp": scalars},
        )
        shaped = st.fixed_dictionaries(
            {
                "object": st.just("page"),
                "entry": st.lists(st.fixed_dictionaries({"messaging": st.lists(event, max_size=2)}), max_size=2),
            }
        )
    return st.one_of(st.binary(max_size=300), json_values.map(encode), shaped.map(encode))


@pytest.mark.parametrize("channel", ["whatsapp", "messenger"])
def test_meta_webhooks_survive_fuzzing(stack: Stack, http: requests.Session, channel: str) -> None:
    footprint = Footprint(stack)
    url = f"{stack.settings.rasa_url}/webhooks/{channel}/webhook"
    secret = CHANNEL_SECRETS[f"{channel.upper()}_APP_SECRET"]

    @FUZZ
    @given(body=meta_bodies(channel), signed=st.sampled_from([True, True, True, False]))
    def case(body: bytes, signed: bool) -> None:
        headers = {"Content-Type": "application/json"}
        headers["X-Hub-Signature-256"] = sign(body, secret) if signed else sign(body, "not-the-secret")
        before = footprint()
        answer = http.post(url, data=body, headers=headers, timeout=60)
        check(answer, before, footprint, body)
        if not signed:
            assert answer.status_code == 403

    case()


webchat_events = st.one_of(
    st.tuples(st.just("user_uttered"), json_values),
    st.tuples(
        st.just("user_uttered"),
        st.fixed_dictionaries(
            {"message": st.one_of(hostile_text, json_values)},
            optional={
                "client_id": st.one_of(hostile_text, st.integers()),
                "session_id": hostile_text,
                "metadata": json_values,
                "customData": json_values,
            },
        ),
    ),
    st.tuples(st.just("session_request"), json_values),
    st.tuples(
        st.just("session_request"),
        st.fixed_dictionaries(
            {"session_id": st.one_of(hostile_text, st.none()), "token": st.one_of(hostile_text, st.none())}
        ),
    ),
)


def test_webchat_socket_survives_fuzzing(stack: Stack) -> None:
    """Arbitrary events on one widget socket: every message is answered with a well-formed
    acknowledgement, the socket stays up, and a refused message stores nothing."""
    import asyncio

    import socketio

    loop = asyncio.new_event_loop()
    sio = socketio.AsyncClient(reconnection=False)
    confirmed: list[dict] = []
    refused: list[dict] = []
    sio.on("session_confirm", lambda data: confirmed.append(data))
    sio.on("session_refused", lambda data: refused.append(data))

    async def connect() -> None:
        await sio.connect(stack.settings.rasa_url, socketio_path="/socket.io", transports=["websocket"])
        await sio.emit("session_request", {})
        for _ in range(100):
            if confirmed:
                return
            await asyncio.sleep(0.1)
        raise AssertionError("no session_confirm")

    loop.run_until_complete(connect())
    try:
        redis = stack.redis_client()

        def stored() -> tuple[int, int]:
            """Customer messages stored in this socket's conversation, and dedup markers.
            (Not the stream's length: a handoff an earlier case caused appends events of
            its own, a moment later.)"""
            raw = redis.get(f"brightline:tracker:{confirmed[-1]['session_id']}")
            users = sum(e.get("event") == "user" for e in json.loads(raw)["events"]) if raw else 0
            return users, sum(1 for _ in redis.scan_iter("channel:seen:webchat:*", count=1000))

        @FUZZ
        @given(event=webchat_events)
        def case(event: tuple[str, Any]) -> None:
            name, data = event
            before = stored()
            if name == "session_request":  # always answered: confirmed (new or resumed) or refused
                answered = len(confirmed) + len(refused)
                loop.run_until_complete(sio.emit(name, data))
                for _ in range(100):
                    if len(confirmed) + len(refused) > answered:
                        return
                    loop.run_until_complete(asyncio.sleep(0.05))
                raise AssertionError(f"session_request {data!r} got no answer")
            ack = loop.run_until_complete(sio.call(name, data, timeout=20))
            assert isinstance(ack, dict) and isinstance(ack.get("ok"), bool), ack
            if not ack["ok"]:
                assert isinstance(ack.get("error"), str) and ack["error"], ack
                if ack.get("reason") != "rate_limited":
                    assert stored() == before, ("a refused message changed state", repr(data)[:300])
            assert sio.connected

        case()
        assert confirmed and all(str(c["session_id"]).startswith("webchat:") for c in confirmed)
    finally:
        loop.run_until_complete(sio.disconnect())
        loop.close()
