"""Two replicas of every process behind a real HAProxy, on one Redis: what ``docs/deployment.md``
describes, started on loopback for the tests and the two-node bench.

* two action servers behind the load balancer's ``actions`` port (Rasa calls that);
* two Rasa servers sharing the Redis tracker store, lock store and event stream, behind its
  ``rasa`` port (channels, the widget's socket.io, the HTTP API the handoff service calls);
* two handoff services sharing the queue and the stream's consumer group, behind its
  ``console`` port.

HAProxy checks each server every 500 ms and takes a dead one out after two failed checks;
a request that cannot connect is retried on the other server (``option redispatch``). It
appends the client's address to X-Forwarded-For, which the processes read with
``PROXIES_COUNT=1``.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import time
import urllib.request
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from bot.processes import (
    Process,
    action_server_process,
    free_port,
    handoff_process,
    http_ok,
    rasa_process,
)
from bot.settings import Settings

START_TIMEOUT = 300.0

HAPROXY_CONFIG = """\
global
    maxconn 4000
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout tunnel 1h
    option redispatch
    retries 3
    option http-server-close
    option forwardfor
frontend stats
    bind 127.0.0.1:{stats}
    stats enable
    stats uri /stats
{sections}
"""

SECTION = """\
frontend {name}_in
    bind 127.0.0.1:{port}
    default_backend {name}
backend {name}
    balance roundrobin
    option httpchk GET {health}
{servers}
"""


def haproxy_config(stats: int, pools: dict[str, tuple[int, str, list[int]]]) -> str:
    """``pools``: name -> (the balancer's port, health path, the servers' ports)."""
    sections = []
    for name, (port, health, servers) in pools.items():
        lines = "\n".join(
            f"    server {name}{n} 127.0.0.1:{p} check inter 500 fall 2 rise 2" for n, p in enumerate(servers, start=1)
        )
        sections.append(SECTION.format(name=name, port=port, health=health, servers=lines))
    return HAPROXY_CONFIG.format(stats=stats, sections="\n".join(sections))


@dataclass
class Node:
    """One replica of each process: what a machine of the two runs."""

    actions: Process
    rasa: Process
    handoff: Process
    rasa_url: str
    console_url: str

    def processes(self) -> list[Process]:
        return [self.actions, self.rasa, self.handoff]


@dataclass
class Cluster:
    settings: Settings  # as clients see it: the balancer's ports
    token: str
    nodes: list[Node]
    balancer: Process
    rasa_url: str  # through the balancer
    console_url: str
    log_dir: Path
    stats_url: str

    def served(self, backend: str) -> dict[str, int]:
        """Requests (and WebSocket sessions) each server of ``backend`` has had, from HAProxy's stats."""
        return {name: int(row["stot"] or 0) for name, row in self._servers(backend).items()}

    def wait_up(self, timeout: float = 30.0) -> None:
        """Until HAProxy's health checks have found every server up (two checks, 500 ms apart)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [row["status"] for b in ("rasa", "actions", "console") for row in self._servers(b).values()]
            if states and all(state == "UP" for state in states):
                return
            time.sleep(0.2)
        raise TimeoutError(f"HAProxy does not see every server up: {states}")

    def _servers(self, backend: str) -> dict[str, dict[str, str]]:
        with urllib.request.urlopen(f"{self.stats_url}/stats;csv", timeout=5) as response:
            rows = list(csv.reader(io.StringIO(response.read().decode().lstrip("# "))))
        head = rows[0]
        return {
            row[head.index("svname")]: dict(zip(head, row, strict=False))
            for row in rows[1:]
            if row and row[0] == backend and row[head.index("svname")] not in ("BACKEND", "FRONTEND")
        }

    def kill(self, node: int) -> None:
        """A machine dies: SIGKILL to each of its processes, nothing flushed or handed over."""
        for process in self.nodes[node].processes():
            if process.popen is not None and process.popen.poll() is None:
                os.killpg(process.popen.pid, signal.SIGKILL)
                process.popen.wait(10)

    def restart(self, node: int) -> None:
        for process in self.nodes[node].processes():
            if not process.running():
                process.start()
        for process in self.nodes[node].processes():
            process.wait_healthy(START_TIMEOUT)
        self.wait_up()

    def stop(self) -> None:
        for node in self.nodes:
            for process in reversed(node.processes()):
                process.stop()
        self.balancer.stop()


def start_cluster(settings: Settings, model: Path, log_dir: Path, replicas: int = 2) -> Cluster:
    """``replicas`` nodes behind HAProxy. ``settings`` names Redis, the KB and the secrets; the
    ports in it are replaced: the balancer's for clients, each node's own for its processes."""
    if shutil.which("haproxy") is None:
        raise RuntimeError("haproxy is not installed; `make test` installs it (Debian package haproxy)")
    token = uuid.uuid4().hex
    rasa_lb, actions_lb, console_lb, stats = free_port(), free_port(), free_port(), free_port()
    front = replace(settings, rasa_port=rasa_lb, action_port=actions_lb, handoff_port=console_lb)
    nodes, ports = [], {"rasa": [], "actions": [], "console": []}
    for n in range(1, replicas + 1):
        mine = replace(front, rasa_port=free_port(), action_port=free_port(), handoff_port=free_port())
        node_logs = log_dir / f"node{n}"
        actions = action_server_process(mine, node_logs)
        rasa = rasa_process(replace(mine, action_port=actions_lb), model, token, node_logs)  # actions via the LB
        handoff = handoff_process(replace(mine, rasa_port=rasa_lb), token, node_logs)  # Rasa via the LB
        nodes.append(
            Node(actions, rasa, handoff, f"http://127.0.0.1:{mine.rasa_port}", f"http://127.0.0.1:{mine.handoff_port}")
        )
        ports["rasa"].append(mine.rasa_port)
        ports["actions"].append(mine.action_port)
        ports["console"].append(mine.handoff_port)
    config = log_dir / "haproxy.cfg"
    log_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(
        haproxy_config(
            stats,
            {
                "rasa": (rasa_lb, "/", ports["rasa"]),
                "actions": (actions_lb, "/health", ports["actions"]),
                "console": (console_lb, "/health", ports["console"]),
            },
        ),
        encoding="utf-8",
    )
    balancer = Process(
        "haproxy",
        ["haproxy", "-db", "-f", str(config)],
        log_dir / "haproxy.log",
        lambda: http_ok(f"http://127.0.0.1:{stats}/stats;csv"),
        stop_signal=signal.SIGUSR1,  # soft stop
    )
    cluster = Cluster(
        front,
        token,
        nodes,
        balancer,
        f"http://127.0.0.1:{rasa_lb}",
        f"http://127.0.0.1:{console_lb}",
        log_dir,
        f"http://127.0.0.1:{stats}",
    )
    try:
        balancer.start()
        balancer.wait_healthy(30)
        for kind in ("actions", "rasa", "handoff"):  # what each needs is up first
            for node in nodes:
                getattr(node, kind).start()
            for node in nodes:
                getattr(node, kind).wait_healthy(START_TIMEOUT)
        cluster.wait_up()
    except BaseException:
        cluster.stop()
        raise
    return cluster
