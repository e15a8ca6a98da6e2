"""Fixes to Rasa 3.6 that we apply in the Rasa process before it starts (``bot.rasa_main``).

Each one is small, checked by a test against the installed Rasa, and named for what it
fixes, so it can be dropped when Rasa is upgraded.

* **The action server's answer is validated with a schema built once.** Rasa 3.6 calls
  ``jsonschema.validate`` for every action-server response, which checks the schema itself
  and builds a new validator each time: about 33 ms of CPU per customer message on this
  machine, since every intent goes to our actions (issue 12's profile). The same schema,
  the same checks, the same error; the validator is built on first use. A valid answer is
  checked event by event against its own type's part of the schema (Rasa's ``oneOf`` tries
  all 23 types for every event); anything that part does not accept goes through the whole
  schema, so an invalid answer is refused with Rasa's own error.
* **No NLU for a message while a person has the conversation.** Rasa runs the whole NLU
  pipeline (the sentence encoder, about 30 ms of CPU) on every message and then, the
  conversation being paused, predicts nothing: the result is never used, and it sat between
  the customer and the agent. A paused conversation's message is logged with an empty
  parse (no intent, no entities); a ``/command`` is still parsed, so Rasa's own restart
  check works as before.
* **Events sent to Rasa's HTTP API are validated the same way.** Each agent reply reaches
  the customer through ``POST /conversations/{id}/tracker/events``, which Rasa checks with
  ``jsonschema.validate``: a new validator per request, about three quarters of the Rasa
  process's busy time with 200 open chats (a profile of issue 12's capacity benchmark).
  Events valid for their own type pass at once; anything else gets Rasa's own check and
  its 400.
* **An event's class is looked up in a table.** Rasa 3.6 turns each stored event back into
  an object by walking every subclass of ``Event`` (``all_subclasses``, which also calls
  ``inspect.isabstract`` on each) until one has the event's type name: about 80 µs an
  event, and a tracker is read back whole at least twice a message (retrieve, then save),
  so a conversation of 40 events paid several milliseconds a message, growing with its
  length (3.1 s of 35 s in issue 12's profile at 50 conversations at once). The table keeps
  Rasa's answer (the first class in its order with that name) and is rebuilt when a name is
  missing, so a class defined later is still found.
* **A custom action the action server could not run is tried again.** Rasa 3.6 logs "the
  action's events are lost" and goes on when the action server cannot be reached or
  answers 5xx: the customer's message then gets no answer at all, and a request for a
  person is silently dropped (217 of 800 handoffs at once in issue 12's benchmark, before
  the action server's cause was fixed; any action-server restart too). The call is tried
  again after 0.25, 0.5, 1, 2 and 4 s (the supervisor restarts a crashed action server
  within that), holding the conversation's lock as Rasa does for one call. A refusal (400,
  ``ActionExecutionRejection``) or a timeout is not retried: the action may have run.
  Our actions are safe to run twice (a handoff already queued is not queued again).
"""

from __future__ import annotations

import asyncio
import logging
from functools import lru_cache, wraps
from typing import Any

log = logging.getLogger(__name__)

APPLIED: set[str] = set()
ACTION_RETRY_DELAYS_S = (0.25, 0.5, 1.0, 2.0, 4.0)


@lru_cache(maxsize=1)
def action_result_validator() -> Any:
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@lru_cache(maxsize=1)
def event_validators() -> tuple[Any, dict[str, Any]] | None:
    """The same schema split by event type: the response without its events, and for each
    event type the event schema with only that type's alternative.

    Rasa's schema checks each event against every type's alternative (``oneOf`` over 23), to
    find the one that matches: most of the validation's cost. Each alternative pins
    ``event`` to one value, so an event can only match the alternatives with its own type,
    and "exactly one matches" is the same check on those alone. None (use the whole schema)
    if an alternative does not pin its type.
    """
    from copy import deepcopy

    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    items = schema["properties"]["events"]["items"]
    by_type: dict[str, list[dict]] = {}
    for alternative in items["oneOf"]:
        pinned = alternative.get("properties", {}).get("event", {})
        if set(pinned) != {"const"} or not isinstance(pinned["const"], str):
            return None
        by_type.setdefault(pinned["const"], []).append(alternative)
    outer = deepcopy(schema)
    outer["properties"]["events"]["items"] = {"type": "object"}
    cls = validator_for(schema)
    base = {key: value for key, value in items.items() if key != "oneOf"}
    return cls(outer), {name: cls({**base, "oneOf": alts}) for name, alts in by_type.items()}


def _events_valid_by_type(events: Any) -> bool:
    """True only if every event is valid for its own type's part of Rasa's event schema."""
    split = event_validators()
    if split is None or not isinstance(events, list):
        return False
    by_type = split[1]
    for event in events:
        validator = by_type.get(event.get("event")) if isinstance(event, dict) else None
        if validator is None or not validator.is_valid(event):
            return False
    return True


def _valid_by_type(result: Any) -> bool:
    """True only if Rasa's schema accepts ``result`` (checked per event type); False means
    "not shown valid here": the whole schema decides, and names the error."""
    split = event_validators()
    if split is None or not isinstance(result, dict) or not split[0].is_valid(result):
        return False
    return _events_valid_by_type(result.get("events") or [])


def _validate_request_events(original: Any) -> Any:
    """Rasa's ``validate_events_in_request_body`` for the HTTP API, whose
    ``jsonschema.validate`` builds a validator for every request: events valid by type pass
    at once; anything else goes to Rasa's own check, which answers 400 with its error."""

    @wraps(original)
    def validate(request: Any) -> None:
        body = request.json
        if _events_valid_by_type(body if isinstance(body, list) else [body]):
            return None
        return original(request)

    return validate


def _validate_action_result(self: Any, result: dict[str, Any]) -> bool:
    from jsonschema import ValidationError
    from jsonschema.exceptions import best_match
    from rasa.shared.constants import DOCS_BASE_URL

    if _valid_by_type(result):
        return True
    error = best_match(action_result_validator().iter_errors(result))
    if error is None:
        return True
    if isinstance(error, ValidationError):
        error.message += (
            ". Failed to validate Action server response from API, "
            "make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit {DOCS_BASE_URL}/custom-actions"
        )
    raise error


def paused_parse(text: str) -> dict[str, Any]:
    """What a message is logged with while a person has the conversation."""
    return {"text": text, "intent": {"name": None, "confidence": 0.0}, "entities": []}


def _skip_nlu_while_paused(original: Any) -> Any:
    async def parse_message(
        self: Any, message: Any, tracker: Any = None, only_output_properties: bool = True
    ) -> dict[str, Any]:
        text = message.text or ""
        if tracker is not None and tracker.is_paused() and not text.startswith("/"):
            return paused_parse(text)
        return await original(self, message, tracker, only_output_properties)

    parse_message.__wrapped__ = original  # type: ignore[attr-defined]
    return parse_message


_EVENT_TYPES: dict[str, type] = {}


def _event_types() -> dict[str, type]:
    """Type name → the first event class with it, in the order Rasa searches."""
    from rasa.shared.core.events import Event
    from rasa.shared.utils.common import all_subclasses

    table: dict[str, type] = {}
    for cls in all_subclasses(Event):
        table.setdefault(cls.type_name, cls)
    return table


def _resolve_event_by_type(type_name: str, default: type | None = None) -> type | None:
    """Rasa's ``Event.resolve_by_type``, from a table instead of a walk of every subclass."""
    cls = _EVENT_TYPES.get(type_name)
    if cls is None:
        _EVENT_TYPES.clear()
        _EVENT_TYPES.update(_event_types())
        cls = _EVENT_TYPES.get(type_name)
    if cls is not None:
        return cls
    if type_name == "topic":
        return None  # Rasa's backwards compatibility for old TopicSet events
    if default is not None:
        return default
    raise ValueError(f"Unknown event name '{type_name}'.")


def action_server_unavailable(exc: BaseException) -> bool:
    """Whether Rasa's ``RasaException`` says the action server was not reached, or failed
    with a 5xx (the action did not complete): then trying again may work."""
    import aiohttp
    from rasa.utils.endpoints import ClientResponseError

    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ClientResponseError):
        return cause.status >= 500
    return isinstance(cause, aiohttp.ClientConnectionError)


def _retry_unavailable_action_server(original: Any) -> Any:
    from rasa.core.actions.action import ActionExecutionRejection
    from rasa.shared.exceptions import RasaException

    @wraps(original)
    async def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        for delay in (*ACTION_RETRY_DELAYS_S, None):
            try:
                return await original(self, *args, **kwargs)
            except ActionExecutionRejection:
                raise
            except RasaException as exc:
                if delay is None or not action_server_unavailable(exc):
                    raise
                log.warning("custom action %r failed (%s); trying again in %g s", self.name(), exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    return run


def apply() -> None:
    """Install the fixes (idempotent)."""
    import rasa.server
    from rasa.core.actions.action import RemoteAction
    from rasa.core.processor import MessageProcessor
    from rasa.shared.core.events import Event

    if "validator" not in APPLIED:
        RemoteAction._validate_action_result = _validate_action_result
        APPLIED.add("validator")
    if "paused_nlu" not in APPLIED:
        MessageProcessor.parse_message = _skip_nlu_while_paused(MessageProcessor.parse_message)
        APPLIED.add("paused_nlu")
    if "action_retry" not in APPLIED:
        RemoteAction.run = _retry_unavailable_action_server(RemoteAction.run)
        APPLIED.add("action_retry")
    if "api_validator" not in APPLIED:
        rasa.server.validate_events_in_request_body = _validate_request_events(
            rasa.server.validate_events_in_request_body
        )
        APPLIED.add("api_validator")
    if "event_types" not in APPLIED:
        Event.resolve_by_type = staticmethod(_resolve_event_by_type)
        APPLIED.add("event_types")
