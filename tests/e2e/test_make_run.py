"""``make run`` as a newcomer uses it: start, ask the printed curl, press Ctrl-C."""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from bot.processes import free_port, port_is_free
from tests.conftest import ROOT

READY_TIMEOUT = 300.0


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def test_make_run_answers_the_printed_curl_and_leaves_nothing_behind(tmp_path: Path) -> None:
    ports = {
        "RASA_PORT": free_port(),
        "ACTION_PORT": free_port(),
        "REDIS_PORT": free_port(),
        "HANDOFF_PORT": free_port(),
    }
    env = {
        **os.environ,
        **{k: str(v) for k, v in ports.items()},
        "BOT_VAR_DIR": str(tmp_path),
        "REDIS_URL": "",
        "BUSINESS_HOURS_FILE": "always",
    }
    env.pop("RASA_TOKEN", None)
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so SIGINT below is exactly a Ctrl-C
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    output: list[str] = []
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while not any("Press Ctrl-C" in line for line in output):
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "make run exited early:\n" + "".join(output)
            output.append(line)
        text = "".join(output)
        pids = [int(p) for p in re.findall(r"started \(pid (\d+)\)", text)]
        assert len(pids) == 4, text
        console = next(line.split()[-1] for line in output if line.strip().startswith("Agent console"))
        assert urllib.request.urlopen(f"{console}login", timeout=10).status == 200
        demo = next(line.split()[2] for line in output if line.strip().startswith("Demo website"))
        page = urllib.request.urlopen(demo, timeout=10).read().decode()
        assert "/webhooks/webchat/widget.js" in page
        assert any(line.strip().startswith("WhatsApp webhook") for line in output)
        curl = next(line.strip() for line in output if line.strip().startswith("curl "))
        answer = subprocess.run(shlex.split(curl), capture_output=True, text=True, timeout=60, check=True).stdout
        assert "Direct Debit" in answer or "direct debit" in answer.lower(), answer
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=90)
    tail = "".join(output)
    while (line := lines.get(timeout=5)) is not None:
        tail += line
    # make itself dies of the SIGINT once its child has finished, as after a real Ctrl-C.
    assert code in (0, -signal.SIGINT), tail
    for name in ("handoff service", "rasa", "action server", "redis"):
        assert f"{name} stopped" in tail, tail
    assert not [pid for pid in pids if _alive(pid)], tail
    assert all(port_is_free(port) for port in ports.values())
    aof = b"".join(p.read_bytes() for p in (tmp_path / "redis").rglob("*.aof"))
    assert b"brightline:tracker:rest:demo" in aof, "the conversation was not flushed to Redis' append-only file"
