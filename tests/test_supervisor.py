"""The supervisor keeps the stack up, and every process runs with least privilege.

Everything here starts real processes: small ``python`` HTTP servers, a real redis-server,
the real action server and a Sanic app configured by Rasa's own CORS code.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from bot.processes import (
    Process,
    action_server_process,
    free_port,
    http_ok,
    port_is_free,
    private_dir,
    rasa_env,
    rasa_process,
    redis_process,
    stored_secret,
)
from bot.settings import Settings, SettingsError, load_settings
from bot.supervisor import RestartPolicy, State, Supervisor
from tests.conftest import ROOT
from tests.stack import listening

NO_FILE = Path("/nonexistent/.env")
FAST = RestartPolicy(first_delay=0.2, max_delay=0.8, reset_after=0.6, start_timeout=30)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(") ")[-1].startswith("Z"))


def http_server(name: str, port: int, log_dir: Path) -> Process:
    """A tiny real server: Python's http.server on a loopback port."""
    command = [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    return Process(name, command, log_dir / f"{name}.log", lambda: http_ok(f"http://127.0.0.1:{port}/"))


def drive(supervisor: Supervisor, until: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll the supervisor the way its loop does until ``until()`` holds."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "the supervisor did not get there in time"
        supervisor.poll()
        time.sleep(0.05)


def kill_hard(process: Process) -> int:
    assert process.popen is not None
    pid = process.popen.pid
    os.killpg(pid, signal.SIGKILL)
    return pid


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[Callable[..., Supervisor]]:
    made: list[Supervisor] = []

    def make(processes: list[Process], policy: RestartPolicy = FAST, out: list[str] | None = None) -> Supervisor:
        supervisor = Supervisor(processes, policy, out=(out.append if out is not None else lambda _line: None))
        made.append(supervisor)
        supervisor.start(timeout=30)
        return supervisor

    yield make
    for supervisor in made:
        supervisor.stop()


def test_a_killed_child_is_restarted_on_its_port_while_the_other_keeps_running(
    tmp_path: Path, supervised: Callable[..., Supervisor]
) -> None:
    first_port, second_port = free_port(), free_port()
    out: list[str] = []
    supervisor = supervised(
        [http_server("first", first_port, tmp_path), http_server("second", second_port, tmp_path)], out=out
    )
    first, second = supervisor.child("first"), supervisor.child("second")
    second_pid = second.process.pid
    killed = kill_hard(first.process)

    drive(supervisor, lambda: first.restarts == 1 and first.state is State.HEALTHY)

    assert first.process.pid != killed and not alive(killed)
    assert http_ok(f"http://127.0.0.1:{first_port}/")
    assert second.process.pid == second_pid and second.process.running() and second.restarts == 0
    assert http_ok(f"http://127.0.0.1:{second_port}/")
    crash = next(line for line in out if line.startswith(f"first (pid {killed})"))
    assert "was killed by SIGKILL" in crash and "restarting in 0.2 s" in crash
    assert f"Serving HTTP on 127.0.0.1 port {first_port}" in crash  # the child's last log lines
    assert any("first restarted as pid" in line for line in out)


def test_repeated_crashes_wait_longer_each_time_up_to_the_cap(
    tmp_path: Path, supervised: Callable[..., Supervisor]
) -> None:
    command = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(0.3)"]
    flaky = Process("flaky", command, tmp_path / "flaky.log", lambda: True)
    restarted_at: list[float] = []
    out: list[str] = []

    def record(line: str) -> None:
        out.append(line)
        if "restarted as pid" in line:
            restarted_at.append(time.monotonic())

    supervisor = Supervisor([flaky], FAST, out=record)
    supervisor.start(timeout=10)
    try:
        child = supervisor.child("flaky")
        drive(supervisor, lambda: child.restarts >= 4)
    finally:
        supervisor.stop()

    assert child.delays[:4] == [0.2, 0.4, 0.8, 0.8]
    gaps = [later - earlier for earlier, later in itertools.pairwise(restarted_at)]
    # each gap is the child's 0.3 s life plus the wait before the restart
    assert gaps[0] < gaps[1] - 0.25, gaps
    assert "exited with code 0" in "\n".join(out)


def test_a_child_healthy_for_a_while_is_restarted_quickly_again(
    tmp_path: Path, supervised: Callable[..., Supervisor]
) -> None:
    port = free_port()
    supervisor = supervised([http_server("web", port, tmp_path)])
    child = supervisor.child("web")

    kill_hard(child.process)
    drive(supervisor, lambda: child.restarts == 1 and child.state is State.HEALTHY)
    kill_hard(child.process)  # again at once: the wait doubles
    drive(supervisor, lambda: child.restarts == 2 and child.state is State.HEALTHY)
    healthy_since = time.monotonic()
    drive(supervisor, lambda: time.monotonic() - healthy_since > FAST.reset_after + 0.2)
    kill_hard(child.process)  # after a healthy spell: back to the first delay
    drive(supervisor, lambda: child.restarts == 3 and child.state is State.HEALTHY)

    assert child.delays == [0.2, 0.4, 0.2]


SERVE_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from bot.processes import Process, http_ok
    from bot.supervisor import RestartPolicy, Supervisor

    log_dir = Path(sys.argv[1])
    processes = []
    for name, port in (("first", sys.argv[2]), ("second", sys.argv[3])):
        command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", port]
        url = f"http://127.0.0.1:{port}/"
        processes.append(Process(name, command, log_dir / f"{name}.log", lambda url=url: http_ok(url)))
    policy = RestartPolicy(first_delay=0.2, max_delay=1, reset_after=5)
    sys.exit(Supervisor(processes, policy).serve(lambda: print("READY", flush=True), 30, interval=0.1))
    """
)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_restarts_a_crash_and_stops_everything_in_reverse_order(tmp_path: Path, stop_signal: int) -> None:
    ports = [free_port(), free_port()]
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT, str(tmp_path), *map(str, ports)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the signal below reaches the supervisor only, like Ctrl-C in make run
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    output: list[str] = []

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 60
        while not any(text in line for line in output):
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "supervisor exited early:\n" + "".join(output)
            output.append(line)

    try:
        wait_for("READY")
        pids = {line.split()[0]: int(line.split("pid ")[1].rstrip(")\n")) for line in output if "started (pid" in line}
        os.killpg(pids["first"], signal.SIGKILL)
        wait_for("first is healthy again")
        new_first = int(next(line for line in output if "first restarted as pid" in line).split()[4])
        assert alive(pids["second"])
    finally:
        os.kill(proc.pid, stop_signal)
        code = proc.wait(timeout=60)
    while (line := lines.get(timeout=10)) is not None:
        output.append(line)
    text = "".join(output)
    assert code == 0, text
    assert text.index("second stopped") < text.index("first stopped"), text
    assert not [pid for pid in (*pids.values(), new_first) if alive(pid)], text
    assert all(port_is_free(port) for port in ports)


@pytest.fixture
def redis_server_bin() -> None:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed; `make test` installs it")


def test_a_restarted_redis_keeps_its_data_port_and_password(
    tmp_path: Path, supervised: Callable[..., Supervisor], redis_server_bin: None
) -> None:
    port, password = free_port(), "pa ss\"word'\\x"
    process = redis_process(port, tmp_path / "var" / "redis", tmp_path / "var" / "log", password, maxmemory="64mb")
    assert all(password not in part for part in process.command), "the password must not be on the command line"
    supervisor = supervised([process])
    client = redis.Redis(host="127.0.0.1", port=port, password=password, decode_responses=True)
    client.set("brightline:tracker:alice", "her transcript")
    killed = kill_hard(process)

    child = supervisor.child("redis")
    drive(supervisor, lambda: child.restarts == 1 and child.state is State.HEALTHY)

    assert process.pid != killed
    assert redis.Redis(host="127.0.0.1", port=port, password=password, decode_responses=True).get(
        "brightline:tracker:alice"
    ) == ("her transcript")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port).get("brightline:tracker:alice")
    assert client.config_get("maxmemory") == {"maxmemory": str(64 * 1024 * 1024)}
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}


def test_files_made_under_var_are_private(
    tmp_path: Path, supervised: Callable[..., Supervisor], redis_server_bin: None
) -> None:
    var = tmp_path / "var"
    (var / "log").mkdir(parents=True)
    (var / "log").chmod(0o755)
    old_log = var / "log" / "writer.log"
    old_log.write_text("from an older version\n")
    old_log.chmod(0o644)
    written = var / "transcript.txt"
    command = [sys.executable, "-c", f"open({str(written)!r}, 'w').write('card 4242'); import time; time.sleep(60)"]
    writer = Process("writer", command, old_log, written.exists)
    port = free_port()
    supervised([redis_process(port, var / "redis", var / "log", "secret"), writer])
    redis.Redis(host="127.0.0.1", port=port, password="secret").set("k", "v")
    token = stored_secret(var, "ACTION_TOKEN")

    assert stored_secret(var, "ACTION_TOKEN") == token and stored_secret(var, "X", "given") == "given"
    assert mode(written) == 0o600  # the child's umask
    assert mode(old_log) == 0o600 and mode(var / "log") == 0o700  # tightened, not just new ones
    assert mode(var / "secrets.env") == 0o600 and mode(var / "redis" / "auth.conf") == 0o600
    aof = [path for path in (var / "redis").rglob("*") if "aof" in path.name]
    assert aof, list((var / "redis").rglob("*"))
    for path in [var, *var.rglob("*")]:
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path


def test_private_dir_leaves_a_shared_sticky_folder_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    private_dir(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert mode(private_dir(shared / "var" / "log")) == 0o700


def _settings(tmp_path: Path, **extra: str) -> Settings:
    env = {"BOT_VAR_DIR": str(tmp_path / "var"), "ACTION_PORT": str(free_port()), "REDIS_URL": "", **extra}
    return load_settings(env, env_file=NO_FILE)


def _status(method: str, url: str, headers: dict[str, str] | None = None, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def action_server(tmp_path: Path, redis_server: int) -> Iterator[tuple[Settings, Process]]:
    from tests.stack import REDIS_TEST_PASSWORD

    # Its /health is 200 only while it reaches Redis (the handoff queue lives there).
    settings = _settings(tmp_path, REDIS_URL=f"redis://:{REDIS_TEST_PASSWORD}@127.0.0.1:{redis_server}/13")
    process = action_server_process(settings, tmp_path / "log")
    process.start()
    try:
        process.wait_healthy(90)
        yield settings, process
    finally:
        process.stop()


def test_action_server_refuses_calls_without_the_token_and_listens_on_loopback_only(
    action_server: tuple[Settings, Process], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rasa.utils.endpoints import ClientResponseError, read_endpoint_config

    settings, _process = action_server
    base = f"http://127.0.0.1:{settings.action_port}"
    forged = b'{"next_action": "action_handoff", "sender_id": "vip", "tracker": {"sender_id": "vip"}}'
    json_type = {"Content-Type": "application/json"}

    assert _status("GET", f"{base}/health") == 200
    assert _status("POST", f"{base}/webhook", json_type, forged) == 403
    assert _status("POST", f"{base}/webhook", {**json_type, "Authorization": "Bearer guess"}, forged) == 403
    assert _status("GET", f"{base}/actions") == 403
    assert listening(settings.action_port) == {"0100007F"}  # 127.0.0.1, nothing on 0.0.0.0 or ::

    # Rasa, configured by endpoints.yml with the variables make run gives it, gets through.
    for name, value in rasa_env(settings).items():
        monkeypatch.setenv(name, value)
    endpoint = read_endpoint_config(str(ROOT / "endpoints.yml"), "action_endpoint")
    assert endpoint is not None
    unknown = {"next_action": "action_that_does_not_exist", "tracker": {"sender_id": "x"}, "domain": {}}
    with pytest.raises(ClientResponseError) as refused:
        asyncio.run(endpoint.request(json=unknown, method="post"))
    assert refused.value.status == 404  # past the token check, answered by rasa_sdk itself


def test_action_server_will_not_start_without_a_token(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "ACTION_TOKEN"}
    env.update(BOT_VAR_DIR=str(tmp_path), ACTION_PORT=str(free_port()))
    result = subprocess.run(
        [sys.executable, "-m", "actions.server"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "ACTION_TOKEN" in result.stderr


CORS_SCRIPT = textwrap.dedent(
    """
    import sys
    from rasa.cli.arguments.run import set_run_arguments
    import argparse
    from rasa.server import configure_cors
    from sanic import Sanic, response

    parser = argparse.ArgumentParser()
    set_run_arguments(parser)
    args, _ = parser.parse_known_args(sys.argv[2:])
    app = Sanic("cors_probe")
    configure_cors(app, args.cors)

    @app.get("/status")
    async def status(_request):
        return response.json({"ok": True})

    app.run("127.0.0.1", int(sys.argv[1]), access_log=False)
    """
)


@pytest.mark.parametrize(
    ("origins", "allowed"),
    [("", set()), ("https://shop.example, https://help.example", {"https://shop.example"})],
)
def test_rasa_answers_cross_origin_calls_only_from_configured_sites(
    tmp_path: Path, origins: str, allowed: set[str]
) -> None:
    settings = _settings(tmp_path, CORS_ORIGINS=origins, ACTION_TOKEN="t")
    command = rasa_process(settings, tmp_path / "model.tar.gz", "token", tmp_path).command
    assert "*" not in command
    port = free_port()
    probe = Process(
        "cors probe",
        [sys.executable, "-c", CORS_SCRIPT, str(port), *command[command.index("run") + 1 :]],
        tmp_path / "cors.log",
        lambda: http_ok(f"http://127.0.0.1:{port}/status"),
    )
    probe.start()
    try:
        probe.wait_healthy(120)
        reflected = set()
        for origin in ("https://evil.example", "https://shop.example", "null"):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/status", headers={"Origin": origin})
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.headers.get("Access-Control-Allow-Origin"):
                    reflected.add(response.headers["Access-Control-Allow-Origin"])
    finally:
        probe.stop()
    assert reflected == allowed


@pytest.mark.parametrize(
    ("env", "name"),
    [({"REDIS_MAXMEMORY": "lots"}, "REDIS_MAXMEMORY"), ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS")],
)
def test_bad_least_privilege_settings_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(env, env_file=NO_FILE)


def test_the_local_redis_password_reaches_every_client(tmp_path: Path) -> None:
    settings = _settings(tmp_path, REDIS_PASSWORD="s3cret", REDIS_PORT="6390")
    env = rasa_env(settings)
    assert env["REDIS_URL"] == "redis://:s3cret@127.0.0.1:6390/0"  # handoff service, CLIs
    assert env["REDIS_PASSWORD"] == "s3cret"  # endpoints.yml: tracker store, lock store, broker
    assert env["ACTION_TOKEN"] == stored_secret(settings.var_dir, "ACTION_TOKEN")
