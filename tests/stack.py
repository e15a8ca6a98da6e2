"""The real stack for end-to-end tests: redis-server, the action server, ``rasa run`` with
the trained model and the handoff service, each on a free loopback port, torn down at the
end. The fixtures are registered in ``tests/conftest.py`` so ``tests/e2e`` and
``tests/security`` share one running stack."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
import requests

from bot.processes import (
    Process,
    action_server_process,
    free_port,
    handoff_process,
    rasa_process,
    redis_process,
    service_env,
)
from bot.settings import ROOT, Settings, load_settings
from bot.train import train
from tests.e2e import fake_graph
from tests.e2e.clients import WEBCHAT_SECRET
from tests.e2e.fake_graph import FakeGraphApi

START_TIMEOUT = 240.0
REST_TOKEN = "test-rest-token"
REDIS_TEST_PASSWORD = "test-redis-password"  # the tests' Redis requires it, as make run's does
REDIS_SERVERS: dict[int, Process] = {}  # the session's redis-server by port, for outage tests
# Test credentials for the Meta channels; the fake Graph API checks the access tokens.
CHANNEL_SECRETS = {
    "WHATSAPP_VERIFY_TOKEN": "test-whatsapp-verify",
    "WHATSAPP_APP_SECRET": "test-whatsapp-app-secret",
    "WHATSAPP_ACCESS_TOKEN": fake_graph.WHATSAPP_TOKEN,
    "WHATSAPP_PHONE_NUMBER_ID": "1234567890",
    "MESSENGER_VERIFY_TOKEN": "test-messenger-verify",
    "MESSENGER_APP_SECRET": "test-messenger-app-secret",
    "MESSENGER_PAGE_ACCESS_TOKEN": fake_graph.MESSENGER_TOKEN,
}


@dataclass
class Stack:
    settings: Settings
    token: str
    model: Path
    log_dir: Path
    actions: Process
    rasa: Process
    handoff: Process

    @property
    def rest_url(self) -> str:
        return f"{self.settings.rasa_url}/webhooks/rest/webhook"

    def say(self, sender: str, message: str) -> list[dict]:
        """Send one customer message over the REST channel; return the bot's messages."""
        response = requests.post(
            self.rest_url, json={"sender": sender, "message": message}, headers=self.rest_headers, timeout=60
        )
        response.raise_for_status()
        return response.json()

    @property
    def rest_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {REST_TOKEN}"}

    def tracker(self, sender: str) -> dict:
        """The tracker of a conversation id; a bare name is a REST sender (``rest:{name}``)."""
        conversation = sender if ":" in sender else f"rest:{sender}"
        url = f"{self.settings.rasa_url}/conversations/{quote(conversation, safe=':')}/tracker"
        response = requests.get(url, params={"token": self.token}, timeout=30)
        response.raise_for_status()
        return response.json()

    def redis_client(self) -> redis.Redis:
        address = self.settings.redis
        return redis.Redis(
            host=address.host, port=address.port, db=address.db, password=address.password, decode_responses=True
        )

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.handoff_port}"

    def add_agent(
        self, name: str, password: str, capacity: int = 3, roles: str = "agent", teams: str = "", languages: str = ""
    ) -> None:
        """Create an account the way an operator does: with the CLI."""
        add_agent(self.settings, name, password, capacity, roles, teams, languages)

    def kill_handoff(self) -> None:
        """A crash, not a shutdown: SIGKILL leaves whatever it was doing half done."""
        assert self.handoff.popen is not None
        os.killpg(self.handoff.popen.pid, signal.SIGKILL)
        self.handoff.popen.wait(10)

    def kill_actions(self) -> None:
        """The action server crashes (SIGKILL), as under a supervisor that has not restarted it yet."""
        assert self.actions.popen is not None
        os.killpg(self.actions.popen.pid, signal.SIGKILL)
        self.actions.popen.wait(10)

    def start_actions(self) -> None:
        self.actions = action_server_process(self.settings, self.log_dir)
        self.actions.start()
        self.actions.wait_healthy(START_TIMEOUT)

    def start_handoff(self) -> None:
        self.handoff = handoff_process(self.settings, self.token, self.log_dir)
        self.handoff.start()
        self.handoff.wait_healthy(START_TIMEOUT)

    def stop_redis(self) -> None:
        """An outage: Redis shuts down (AOF flushed), every client loses its connection."""
        REDIS_SERVERS[self.settings.redis_port].stop()

    def start_redis(self) -> None:
        """Redis back on the same port and data directory (the AOF brings the data back)."""
        process = REDIS_SERVERS[self.settings.redis_port]
        process.start()
        process.wait_healthy(60)

    def restart_rasa(self) -> None:
        self.rasa.stop()
        self.rasa = rasa_process(self.settings, self.model, self.token, self.log_dir)
        self.rasa.start()
        self.rasa.wait_healthy(START_TIMEOUT)


def add_agent(
    settings: Settings,
    name: str,
    password: str,
    capacity: int = 3,
    roles: str = "agent",
    teams: str = "",
    languages: str = "",
) -> None:
    """``python -m handoff.agents add`` against the Redis ``settings`` name, as an operator runs it."""
    command = ["add", name, "--password-stdin", "--capacity", str(capacity), "--roles", roles]
    command += ["--teams", teams, "--languages", languages]
    result = subprocess.run(
        [sys.executable, "-m", "handoff.agents", *command],
        input=password + "\n",
        env={**os.environ, **service_env(settings)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real redis-server on a free port, for the whole session; yields its port."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed; run the tests with `make test`, which installs it")
    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    process = redis_process(port, folder / "data", folder / "log", password=REDIS_TEST_PASSWORD)
    process.start()
    REDIS_SERVERS[port] = process
    try:
        process.wait_healthy(60)
        yield port
    finally:
        REDIS_SERVERS.pop(port).stop()


@pytest.fixture(scope="session")
def graph_api() -> Iterator[FakeGraphApi]:
    """The stand-in for Meta's Graph API that the WhatsApp and Messenger channels call."""
    fake = FakeGraphApi()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server: int, graph_api: FakeGraphApi) -> Iterator[Stack]:
    var_dir = tmp_path_factory.mktemp("stack")
    # The demo KB plus an editor's entry not translated yet (tests/data/kb_extra): every
    # demo entry is in all six languages, and a customer's language an entry lacks is a case too.
    kb_dir = var_dir / "faq"
    shutil.copytree(ROOT / "data" / "faq", kb_dir)
    shutil.copy(ROOT / "tests" / "data" / "kb_extra" / "shop.yml", kb_dir / "shop.yml")
    env = {
        "KB_DIR": str(kb_dir),
        **CHANNEL_SECRETS,
        "BUSINESS_HOURS_FILE": "always",  # the tests must not depend on the time of day
        "GRAPH_API_URL": graph_api.url,
        "GRAPH_API_VERSION": fake_graph.VERSION,
        "BOT_VAR_DIR": str(var_dir),
        "RASA_PORT": str(free_port()),
        "ACTION_PORT": str(free_port()),
        "REDIS_PORT": str(redis_server),
        "HANDOFF_PORT": str(free_port()),
        "REDIS_URL": "",
        "REST_TOKEN": REST_TOKEN,
        "REDIS_PASSWORD": REDIS_TEST_PASSWORD,
        "WEBCHAT_SECRET": WEBCHAT_SECRET,
        # Every test runs from 127.0.0.1: the per-address limit is tested on its own.
        "RATE_LIMIT_ADDRESS": "100000/100000",
        "TURNS_PER_ADDRESS": "50",
        "ROUTING_OFFER_SECONDS": "3",  # an offer nobody takes moves on within a test's patience
    }
    settings = load_settings(env, env_file=Path("/nonexistent"))
    model = train(quiet=True)
    token = uuid.uuid4().hex
    log_dir = var_dir / "log"
    processes = [
        action_server_process(settings, log_dir),
        rasa_process(settings, model, token, log_dir),
        handoff_process(settings, token, log_dir),
    ]
    started: list[Process] = []
    try:
        for process in processes:
            process.start()
            started.append(process)
            process.wait_healthy(START_TIMEOUT)
        stack = Stack(settings, token, model, log_dir, *processes)
        yield stack
        started[:] = [stack.actions, stack.rasa, stack.handoff]
    finally:
        for process in reversed(started):
            process.stop()


def listening(port: int) -> set[str]:
    """Local addresses listening on ``port`` (hex, as /proc/net/tcp* writes them):
    ``{"0100007F"}`` is 127.0.0.1 alone, nothing on 0.0.0.0 or ::."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def rest_say(url: str, sender: str, text: str, timeout: float = 60) -> list[dict]:
    """A REST client as a customer's app would be: it tries again while the server says to
    (502/503 while a node dies or Redis fails over, 429 with its wait)."""
    deadline = time.monotonic() + timeout
    while True:
        response = requests.post(
            f"{url}/webhooks/rest/webhook",
            json={"sender": sender, "message": text},
            headers={"Authorization": f"Bearer {REST_TOKEN}"},
            timeout=60,
        )
        if response.status_code in (502, 503, 429) and time.monotonic() < deadline:
            time.sleep(1)
            continue
        response.raise_for_status()
        return response.json()


def new_sender() -> str:
    """A REST sender name (its conversation id is ``rest:{name}``)."""
    return f"test-{uuid.uuid4().hex[:12]}"


def new_webchat_id() -> str:
    """A widget conversation id; clients.Customer signs it with the test WEBCHAT_SECRET."""
    return f"webchat:{uuid.uuid4().hex}"


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()
