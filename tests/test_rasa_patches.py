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
        for _ in range(50):
            assert action._validate_action_result(GOOD) is True
        assert rasa_patches.action_result_validator.cache_info().misses == 1  # built once
        with pytest.raises(ValidationError) as ours:
            action._validate_action_result(BAD)
        with pytest.raises(ValidationError) as theirs:
            ORIGINAL(action, BAD)
        assert ours.value.message == theirs.value.message
        assert "Failed to validate Action server response" in ours.value.message
    finally:
        RemoteAction._validate_action_result = ORIGINAL
        rasa_patches.APPLIED.discard("validator")
