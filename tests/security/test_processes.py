"""Least privilege on the running stack: the attacks of issue 8 on the processes themselves."""

from __future__ import annotations

import json
import stat
import uuid

import pytest
import redis
import requests

from handoff import keys
from tests.e2e.conftest import Stack
from tests.stack import listening


def test_a_forged_action_call_cannot_queue_a_fake_vip_chat(stack: Stack) -> None:
    # Once: POST /webhook with next_action action_handoff queued a "VIP" ahead of everyone.
    conversation = f"rest:forged-{uuid.uuid4().hex[:8]}"
    forged = {
        "next_action": "action_handoff",
        "sender_id": conversation,
        "tracker": {"sender_id": conversation, "slots": {"vip": True}, "events": [], "latest_message": {}},
        "domain": {},
    }
    url = stack.settings.action_url
    for headers in ({}, {"Authorization": "Bearer guess"}, {"Authorization": f"Bearer {stack.token}"}):
        answer = requests.post(url, data=json.dumps(forged), headers={"Content-Type": "application/json", **headers})
        assert answer.status_code == 403, headers  # not even Rasa's own API token opens it
    assert not stack.redis_client().exists(keys.chat(conversation))
    assert listening(stack.settings.action_port) == {"0100007F"}  # 127.0.0.1 only


@pytest.mark.parametrize("port_of", ["rasa_port", "handoff_port", "redis_port"])
def test_every_process_listens_on_loopback_only(stack: Stack, port_of: str) -> None:
    assert listening(getattr(stack.settings, port_of)) == {"0100007F"}


def test_redis_wants_its_password(stack: Stack) -> None:
    anonymous = redis.Redis(port=stack.settings.redis_port, db=0)
    with pytest.raises(redis.AuthenticationError):
        anonymous.get(f"brightline:tracker:rest:{uuid.uuid4().hex}")


def test_logs_holding_transcripts_are_private(stack: Stack) -> None:
    stack.say(f"private-{uuid.uuid4().hex[:8]}", "my card ends in 4242")
    logs = list(stack.log_dir.glob("*.log"))
    assert logs
    assert stat.S_IMODE(stack.log_dir.stat().st_mode) == 0o700
    for log in logs:
        assert stat.S_IMODE(log.stat().st_mode) == 0o600, log
