from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings

NO_FILE = Path("/nonexistent/.env")


def test_defaults_start_a_local_redis() -> None:
    settings = load_settings({}, env_file=NO_FILE)
    assert settings.redis.url == "redis://127.0.0.1:6380/0"
    assert settings.rasa_url == "http://127.0.0.1:5005"


def test_redis_url_is_parsed() -> None:
    settings = load_settings({"REDIS_URL": "redis://:s3cret@cache.internal:6390/2"}, env_file=NO_FILE)
    assert (settings.redis.host, settings.redis.port, settings.redis.db) == ("cache.internal", 6390, 2)
    assert settings.redis.password == "s3cret"


def test_sentinels_name_where_the_primary_is_and_redis_url_keeps_password_and_database() -> None:
    env = {
        "REDIS_URL": "redis://:s3cret@ignored:1/3",
        "REDIS_SENTINELS": "10.0.0.1:26379, 10.0.0.2:26379,10.0.0.3:26380",
        "REDIS_SENTINEL_SERVICE": "support",
    }
    redis = load_settings(env, env_file=NO_FILE).redis
    assert redis.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("10.0.0.3", 26380))
    assert (redis.service, redis.password, redis.db) == ("support", "s3cret", 3)
    assert redis.client().connection_pool.service_name == "support"  # asks the sentinels, not ignored:1


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"REDIS_SENTINELS": "10.0.0.1:26379"}, "REDIS_SENTINELS"),  # without REDIS_URL: no password
        ({"REDIS_URL": "redis://h:1/0", "REDIS_SENTINELS": "10.0.0.1"}, "REDIS_SENTINELS"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"RASA_PORT": "fifty"}, "RASA_PORT"),
        ({"ACTION_PORT": "70000"}, "ACTION_PORT"),
        ({"KB_ANSWER_CUTOFF": "50", "KB_SUGGEST_CUTOFF": "60"}, "KB_ANSWER_CUTOFF"),
        ({"FRUSTRATION_THRESHOLD": "very"}, "FRUSTRATION_THRESHOLD"),
        ({"HANDOFF_PORT": "0"}, "HANDOFF_PORT"),
    ],
)
def test_bad_value_names_the_variable(env: dict, name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(env, env_file=NO_FILE)


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# local secrets\nRASA_TOKEN='from-file'\nexport RASA_PORT=6000\n", encoding="utf-8")
    settings = load_settings({"RASA_PORT": "7000"}, env_file=env_file)
    assert settings.rasa_token == "from-file"
    assert settings.rasa_port == 7000


def test_frustration_threshold_comes_from_the_environment() -> None:
    assert load_settings({"FRUSTRATION_THRESHOLD": "0.9"}, env_file=NO_FILE).frustration.threshold == 0.9


def test_behind_a_balancer_the_address_is_the_one_it_saw_never_what_the_client_wrote() -> None:
    from aiohttp.test_utils import make_mocked_request

    from handoff.app import client_address

    spoofed = make_mocked_request("POST", "/login", headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.7"})
    assert client_address(spoofed, 1) == "203.0.113.7"  # HAProxy appended the real peer last
    assert client_address(spoofed, 2) == "6.6.6.6"
    direct = make_mocked_request("POST", "/login", headers={"X-Forwarded-For": "6.6.6.6"})
    assert client_address(direct, 0) != "6.6.6.6"  # no balancer configured: the header means nothing
    assert load_settings({"PROXIES_COUNT": "1"}, env_file=NO_FILE).proxies_count == 1
