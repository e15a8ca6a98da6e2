"""The parts of handoff.privacy that need no server: key formats checked against the code
that writes those keys, matching markers to conversations, reading trackers, the CLI."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
import yaml
from rasa.core.lock_store import RedisLockStore
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from redis.asyncio import Redis

from bot.settings import SettingsError, load_settings
from handoff import privacy

ROOT = Path(__file__).resolve().parent.parent


def endpoint_prefix(section: str) -> str:
    endpoints = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8"))
    return endpoints[section]["key_prefix"]


def test_tracker_and_lock_keys_are_the_ones_rasa_uses_with_our_endpoints() -> None:
    trackers = RedisTrackerStore(Domain.empty(), key_prefix=endpoint_prefix("tracker_store"))
    locks = RedisLockStore(key_prefix=endpoint_prefix("lock_store"))
    assert trackers.key_prefix + "whatsapp:4915" == privacy.tracker_key("whatsapp:4915")
    assert locks.key_prefix + "whatsapp:4915" == privacy.lock_key("whatsapp:4915")


def test_the_stored_tracker_is_read_back_with_message_ids_and_times() -> None:
    tracker = DialogueStateTracker.from_events(
        "whatsapp:4915",
        [
            ActionExecuted("action_session_start", timestamp=100.0),
            SessionStarted(timestamp=100.0),
            UserUttered("hi", {"name": "greet"}, input_channel="whatsapp", message_id="wamid.A", timestamp=200.0),
            BotUttered("hello", timestamp=300.0),
        ],
    )
    raw = RedisTrackerStore.serialise_tracker(tracker)  # exactly what Rasa writes to Redis
    events = privacy.tracker_events(raw)
    assert privacy.last_event_time(events) == 300.0
    assert privacy.meta_seen_keys(events) == {"channel:seen:whatsapp:wamid.A", "channel:seen:messenger:wamid.A"}
    assert privacy.last_event_time([]) == 0.0
    assert privacy.tracker_events(None) == []


def test_meta_markers_are_the_ones_the_meta_channels_write() -> None:
    from bot.channels.meta import seen_key

    events = [{"event": "user", "message_id": "m_1"}, {"event": "bot", "message_id": "m_2"}]
    assert seen_key("messenger", "m_1") in privacy.meta_seen_keys(events)
    assert seen_key("messenger", "m_2") not in privacy.meta_seen_keys(events)


def test_a_ledger_marker_belongs_to_its_conversation_only() -> None:
    from bot.channels.guard import MessageLedger

    ledger = MessageLedger(Redis(), "rest")  # no connection is opened
    mine, other = "rest:alice", "rest:bob"
    assert privacy.seen_owner(ledger.key(mine, "c-1"), {mine, other}) == mine
    assert privacy.seen_owner(ledger.key(mine, "c:with:colons"), {mine}) == mine
    assert privacy.seen_owner(ledger.key(other, "c-1"), {mine}) is None
    # The longest id wins when one id is another plus ":..."
    assert privacy.seen_owner(ledger.key("rest:alice:x", "c-1"), {mine, "rest:alice:x"}) == "rest:alice:x"


def test_older_webchat_markers_and_bare_channel_names() -> None:
    hex_id = "3f2a" * 8
    assert privacy.seen_owner(f"channel:seen:webchat:{hex_id}:c-1", {f"webchat:{hex_id}"}) == f"webchat:{hex_id}"
    assert privacy.seen_owner(f"channel:seen:webchat:{hex_id}:c-1", {hex_id}) == hex_id  # before namespacing
    # A conversation that happens to be named like a channel never claims every marker.
    assert privacy.seen_owner(f"channel:seen:webchat:{hex_id}:c-1", {"webchat"}) is None
    assert privacy.seen_owner("channel:seen:whatsapp:wamid.X", {"whatsapp"}) is None
    assert privacy.seen_owner("ratelimit:rest:sender:rest:alice", {"rest:alice"}) is None


def test_rate_limit_keys_include_the_one_the_channel_guard_writes() -> None:
    from bot.ratelimit import Limit, RateLimiter

    limiter = RateLimiter(Redis(), "whatsapp:sender", Limit(15, 30))
    assert limiter.key("whatsapp:4915") in privacy.rate_limit_keys("whatsapp:4915")
    assert all(key.endswith(":sender:whatsapp:4915") for key in privacy.rate_limit_keys("whatsapp:4915"))


def test_stream_paging_starts_right_after_the_last_entry() -> None:
    assert privacy.next_id("1700000000000-0") == "1700000000000-1"
    assert privacy.next_id("5-41") == "5-42"


def test_retention_days_setting() -> None:
    assert load_settings({}, env_file=Path("/nonexistent")).retention_days == 0.0
    assert load_settings({"RETENTION_DAYS": "30"}, env_file=Path("/nonexistent")).retention_days == 30.0
    with pytest.raises(SettingsError, match="RETENTION_DAYS"):
        load_settings({"RETENTION_DAYS": "a month"}, env_file=Path("/nonexistent"))


def test_an_export_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "export.json"
    target.write_text("old")
    target.chmod(0o644)
    privacy._write_private(target, '{"new": true}')
    assert target.read_text() == '{"new": true}'
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    fresh = tmp_path / "fresh.json"
    privacy._write_private(fresh, "{}")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_cli_says_clearly_when_redis_is_unreachable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert privacy.main(["export", "whatsapp:4915"]) == 2
    assert "cannot reach Redis at 127.0.0.1:1" in capsys.readouterr().err


def test_retention_refuses_a_negative_period() -> None:
    with pytest.raises(ValueError, match="RETENTION_DAYS"):
        asyncio.run(privacy.retention_loop(Redis(), -1, interval_s=1))
    with pytest.raises(ValueError):
        asyncio.run(privacy.purge_idle(Redis(), 0))
