"""Our fixes to Rasa 3.6 (bot/rasa_patches.py) behave exactly as Rasa's own code, minus the
cost, against the installed Rasa."""

from __future__ import annotations

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction

from bot import rasa_patches

ORIGINAL = RemoteAction._validate_action_result
GOOD = {"events": [{"event": "slot", "name": "x", "value": 1}], "responses": [{"text": "hi"}]}
BAD = {"events": [{"no_event_key": True}], "responses": []}


def test_the_action_result_is_validated_as_rasa_does_with_one_validator() -> None:
    action = RemoteAction("action_answer_faq", None)
    rasa_patches.apply()
    try:
        assert RemoteAction._validate_action_result is rasa_patches._validate_action_result
        rasa_patches.action_result_validator.cache_clear()
        rasa_patches.event_validators.cache_clear()
        for _ in range(50):
            assert action._validate_action_result(GOOD) is True
        assert rasa_patches.event_validators.cache_info().misses == 1  # built once
        with pytest.raises(ValidationError) as ours:
            action._validate_action_result(BAD)
        with pytest.raises(ValidationError) as theirs:
            ORIGINAL(action, BAD)
        assert ours.value.message == theirs.value.message
        assert "Failed to validate Action server response" in ours.value.message
        with pytest.raises(ValidationError):
            action._validate_action_result(BAD)
        assert rasa_patches.action_result_validator.cache_info().misses == 1  # built once
    finally:
        RemoteAction._validate_action_result = ORIGINAL
        rasa_patches.APPLIED.discard("validator")


def test_a_paused_conversation_is_not_parsed_but_a_command_and_a_live_one_are() -> None:
    """While a person has the conversation the NLU result is never used: the message is
    logged with an empty parse instead of running the encoder; Rasa's own path otherwise."""
    import asyncio

    from rasa.core.channels.channel import UserMessage
    from rasa.core.processor import MessageProcessor
    from rasa.shared.core.events import ConversationPaused
    from rasa.shared.core.trackers import DialogueStateTracker

    calls: list[str] = []

    async def original(self, message, tracker=None, only_output_properties=True):
        calls.append(message.text)
        return {"text": message.text, "intent": {"name": "faq", "confidence": 0.9}, "entities": []}

    parse = rasa_patches._skip_nlu_while_paused(original)
    paused = DialogueStateTracker.from_events("c", [ConversationPaused()])
    live = DialogueStateTracker.from_events("c", [])

    async def run() -> list[dict]:
        return [
            await parse(None, UserMessage("my router is dead"), paused),
            await parse(None, UserMessage("/restart"), paused),
            await parse(None, UserMessage("my router is dead"), live),
        ]

    quiet, command, normal = asyncio.run(run())
    assert quiet == {"text": "my router is dead", "intent": {"name": None, "confidence": 0.0}, "entities": []}
    assert command["intent"]["name"] == "faq" and normal["intent"]["name"] == "faq"
    assert calls == ["/restart", "my router is dead"]
    # installed on Rasa's processor by apply(), once
    saved = MessageProcessor.parse_message
    try:
        rasa_patches.APPLIED.discard("paused_nlu")
        rasa_patches.apply()
        assert MessageProcessor.parse_message.__wrapped__ is saved
        rasa_patches.apply()
        assert MessageProcessor.parse_message.__wrapped__ is saved
    finally:
        MessageProcessor.parse_message = saved
        rasa_patches.APPLIED.discard("paused_nlu")


def test_stored_events_are_read_back_as_rasa_reads_them_from_a_table() -> None:
    """Every event type Rasa knows resolves to the same class as Rasa's walk of the
    subclasses; an unknown type still raises, "topic" is still skipped, a default still
    applies, and a class defined after the first lookup is still found."""
    from rasa.shared.core.events import Event, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    original = Event.__dict__["resolve_by_type"]
    from rasa.shared.utils.common import all_subclasses

    names = {cls.type_name for cls in all_subclasses(Event)}
    expected = {name: original.__func__(name) for name in names}
    rasa_patches.apply()
    try:
        assert Event.resolve_by_type is rasa_patches._resolve_event_by_type
        assert {name: Event.resolve_by_type(name) for name in names} == expected
        assert Event.resolve_by_type("topic") is None
        assert Event.resolve_by_type("no_such_event", default=UserUttered) is UserUttered
        with pytest.raises(ValueError, match="Unknown event name 'no_such_event'"):
            Event.resolve_by_type("no_such_event")

        class LateEvent(UserUttered):  # defined after the table was built
            type_name = "late_event_for_test"

        assert Event.resolve_by_type("late_event_for_test") is LateEvent
        stored = [
            {"event": "user", "text": "hello", "timestamp": 1.0, "parse_data": {"intent": {"name": "greet"}}},
            {"event": "action", "name": "x", "timestamp": 2.0},
        ]
        tracker = DialogueStateTracker.from_dict("c", stored)
        assert [type(e).__name__ for e in tracker.events] == ["UserUttered", "ActionExecuted"]
        assert tracker.latest_message.text == "hello"
    finally:
        Event.resolve_by_type = original
        rasa_patches.APPLIED.discard("event_types")


def test_checking_each_event_against_its_own_type_accepts_exactly_what_rasas_schema_does() -> None:
    """Rasa's events as they come back from an action server, and broken ones: the check by
    type accepts exactly what the whole schema accepts; what it does not accept gets Rasa's
    own error."""
    from rasa.shared.core.events import (
        ActionExecuted,
        ActionExecutionRejected,
        ActiveLoop,
        AllSlotsReset,
        BotUttered,
        ConversationPaused,
        ConversationResumed,
        FollowupAction,
        ReminderScheduled,
        Restarted,
        SessionStarted,
        SlotSet,
        UserUttered,
    )

    events = [
        UserUttered("hi", {"name": "greet", "confidence": 0.9}, [{"entity": "e", "value": "v", "start": 0, "end": 2}]),
        BotUttered("hello", {"buttons": [{"title": "Yes", "payload": "/yes"}]}, {"agent": "Ann"}),
        SlotSet("language", "ru"),
        SlotSet("score", {"nested": [1, 2]}),
        ActionExecuted("action_listen"),
        ActionExecutionRejected("action_x"),
        ActiveLoop("form"),
        AllSlotsReset(),
        ConversationPaused(),
        ConversationResumed(),
        FollowupAction("action_y"),
        ReminderScheduled("intent", __import__("datetime").datetime(2026, 1, 1)),
        Restarted(),
        SessionStarted(),
    ]
    valid = [{"events": [e.as_dict() for e in events], "responses": [{"text": "hi"}]}, {"events": [], "responses": []}]
    valid += [{"events": [e.as_dict()], "responses": []} for e in events]
    broken = [
        {"events": [{"event": "slot", "name": 5, "value": 1}], "responses": []},
        {"events": [{"event": "no_such_type"}], "responses": []},
        {"events": [{"name": "x"}], "responses": []},
        {"events": ["slot"], "responses": []},
        {"events": [{"event": 3}], "responses": []},
        {"events": {"event": "slot"}, "responses": []},
        {"events": [{"event": "user", "parse_data": {"intent": "greet"}}], "responses": []},
        {"events": [{"event": "action", "name": "a", "timestamp": "yesterday"}], "responses": []},
        {"events": [], "responses": "hi"},
        {"events": [{"event": "slot", "name": "x", "value": 1}, {"event": "restart", "metadata": 1}], "responses": []},
    ]
    whole = rasa_patches.action_result_validator()
    action = RemoteAction("action_answer_faq", None)
    assert rasa_patches.event_validators() is not None  # the schema still pins each type
    for result in valid:
        assert whole.is_valid(result), result
        assert rasa_patches._valid_by_type(result), result
        assert rasa_patches._validate_action_result(action, result) is True
    for result in broken:
        assert not whole.is_valid(result), result
        assert not rasa_patches._valid_by_type(result), result
        with pytest.raises(ValidationError) as ours:
            rasa_patches._validate_action_result(action, result)
        with pytest.raises(ValidationError) as theirs:
            ORIGINAL(action, result)
        assert ours.value.message == theirs.value.message


def _rasa_error(cause: BaseException, explicit: bool) -> Exception:
    """Rasa's ``RasaException`` as ``RemoteAction.run`` raises it: ``from`` the HTTP error,
    or inside the ``except`` of a connection error (its context)."""
    from rasa.shared.exceptions import RasaException

    try:
        try:
            raise cause
        except BaseException as exc:
            if explicit:
                raise RasaException("Failed to execute custom action 'action_x'") from exc
            raise RasaException("Failed to execute custom action 'action_x'. Couldn't connect") from None
    except RasaException as error:
        if not explicit:
            error.__context__ = cause
        return error


def test_only_an_action_server_that_was_not_reached_or_failed_is_tried_again() -> None:
    """A retry must not run an action twice when it may have completed: a refusal (4xx) or a
    timeout is final; a refused connection, a dropped one or a 5xx (the action raised) is
    tried again."""
    import asyncio

    import aiohttp
    from rasa.shared.exceptions import RasaException
    from rasa.utils.endpoints import ClientResponseError

    from bot.rasa_patches import action_server_unavailable

    assert action_server_unavailable(_rasa_error(ClientResponseError(500, "Internal Server Error", "{}"), True))
    assert action_server_unavailable(_rasa_error(ClientResponseError(503, "Unavailable", ""), True))
    assert not action_server_unavailable(_rasa_error(ClientResponseError(404, "Not Found", ""), True))
    assert action_server_unavailable(_rasa_error(aiohttp.ServerDisconnectedError(), False))
    assert action_server_unavailable(_rasa_error(aiohttp.ClientConnectionError("refused"), False))
    assert not action_server_unavailable(_rasa_error(asyncio.TimeoutError(), False))
    assert not action_server_unavailable(RasaException("no endpoint is configured"))


def test_events_sent_to_the_http_api_are_checked_as_rasa_does_without_a_validator_per_request() -> None:
    """An agent's reply reaches the customer through ``POST .../tracker/events``; Rasa built a
    jsonschema validator for each one (about 15 ms of the Rasa process's CPU per reply)."""
    from types import SimpleNamespace

    import rasa.server

    original = rasa.server.validate_events_in_request_body
    ours = rasa_patches._validate_request_events(original)
    good = [
        [{"event": "bot", "text": "Hello, this is Anna", "metadata": {"agent": "anna"}, "timestamp": 1.0}],
        {"event": "pause"},
        [{"event": "slot", "name": "agent", "value": None}, {"event": "resume"}],
    ]
    bad = [
        [{"event": "user", "parse_data": {"intent": "greet"}}],
        [{"event": "action", "name": "a", "timestamp": "yesterday"}],
        [{"event": "no_such_type"}],
        [{"text": "no type"}],
        ["bot"],
        {"event": "slot", "name": 3},
    ]
    for body in good:
        assert ours(SimpleNamespace(json=body)) is None
        assert original(SimpleNamespace(json=body)) is None  # Rasa agrees
    for body in bad:
        with pytest.raises(rasa.server.ErrorResponse) as theirs:
            original(SimpleNamespace(json=body))
        with pytest.raises(rasa.server.ErrorResponse) as mine:
            ours(SimpleNamespace(json=body))
        assert mine.value.status == theirs.value.status == 400
        assert mine.value.error_info == theirs.value.error_info


def test_apply_installs_the_http_api_check_once() -> None:
    import rasa.server

    original = rasa.server.validate_events_in_request_body
    try:
        rasa_patches.APPLIED.discard("api_validator")
        rasa_patches.apply()
        installed = rasa.server.validate_events_in_request_body
        assert installed.__wrapped__ is original
        rasa_patches.apply()
        assert rasa.server.validate_events_in_request_body is installed
    finally:
        rasa.server.validate_events_in_request_body = original
        rasa_patches.APPLIED.discard("api_validator")
