"""Redis with a replica and three Sentinels on loopback, for the failover test: a primary, a
replica of it, and three sentinels that agree (quorum 2) when the primary is down and promote
the replica. All require the same password, as a production set-up would."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from bot.processes import Process, free_port, private_dir, redis_ping

SERVICE = "brightline"
DOWN_AFTER_MS = 1000  # a primary silent this long is "subjectively down" to a sentinel


def _server(name: str, port: int, folder: Path, password: str, replica_of: int | None = None) -> Process:
    private_dir(folder)
    conf = folder / "redis.conf"
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        f"dir {folder}",
        "appendonly yes",
        "appendfsync everysec",
        f'requirepass "{password}"',
        f'masterauth "{password}"',
    ]
    if replica_of:
        lines.append(f"replicaof 127.0.0.1 {replica_of}")
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.chmod(conf, 0o600)
    return Process(name, ["redis-server", str(conf)], folder / "log", lambda: redis_ping("127.0.0.1", port, password))


def _sentinel(name: str, port: int, folder: Path, primary: int, password: str) -> Process:
    private_dir(folder)
    conf = folder / "sentinel.conf"  # sentinels rewrite their file as they learn
    conf.write_text(
        "\n".join(
            [
                f"port {port}",
                "bind 127.0.0.1",
                f"dir {folder}",
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 2",
                f'sentinel auth-pass {SERVICE} "{password}"',
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {SERVICE} 10000",
                f"sentinel parallel-syncs {SERVICE} 1",
                f'requirepass "{password}"',  # the sentinels ask for it too, as bitnami's chart sets them up
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    os.chmod(conf, 0o600)
    return Process(
        name, ["redis-server", str(conf), "--sentinel"], folder / "log", lambda: redis_ping("127.0.0.1", port, password)
    )


@dataclass
class SentinelSet:
    password: str
    primary: Process
    replica: Process
    sentinels: list[Process]
    primary_port: int
    replica_port: int
    sentinel_ports: list[int]

    @property
    def env(self) -> dict[str, str]:
        """What the processes are given: the password (in REDIS_URL) and the sentinels."""
        return {
            "REDIS_URL": f"redis://:{self.password}@127.0.0.1:{self.primary_port}/0",
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports),
            "REDIS_SENTINEL_SERVICE": SERVICE,
            "REDIS_SENTINEL_PASSWORD": self.password,
        }

    def master_port(self) -> int | None:
        """The primary's port as the first sentinel that answers says."""
        for port in self.sentinel_ports:
            try:
                sentinel = redis.Redis(port=port, password=self.password, socket_timeout=1)
                _host, master = sentinel.sentinel_get_master_addr_by_name(SERVICE)
                return int(master)
            except (redis.RedisError, TypeError):
                continue
        return None

    def wait_synced(self, timeout: float = 30) -> None:
        """The replica has caught up and every sentinel knows it (so a failover can happen)."""
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.replica_port, password=self.password, socket_timeout=1)
        while time.monotonic() < deadline:
            try:
                link = client.info("replication").get("master_link_status") == "up"
                known = all(
                    redis.Redis(port=p, password=self.password, socket_timeout=1).sentinel_slaves(SERVICE)
                    for p in self.sentinel_ports
                )
                if link and known:
                    return
            except redis.RedisError:
                pass
            time.sleep(0.2)
        raise TimeoutError("the replica or the sentinels did not get ready")

    def kill_primary(self) -> None:
        assert self.primary.popen is not None
        os.killpg(self.primary.popen.pid, signal.SIGKILL)
        self.primary.popen.wait(10)

    def stop(self) -> None:
        for process in [*self.sentinels, self.replica, self.primary]:
            process.stop()


def start_sentinels(folder: Path, password: str) -> SentinelSet:
    primary_port, replica_port = free_port(), free_port()
    sentinel_ports = [free_port() for _ in range(3)]
    primary = _server("redis primary", primary_port, folder / "primary", password)
    replica = _server("redis replica", replica_port, folder / "replica", password, replica_of=primary_port)
    sentinels = [
        _sentinel(f"sentinel {n}", port, folder / f"sentinel{n}", primary_port, password)
        for n, port in enumerate(sentinel_ports, start=1)
    ]
    found = SentinelSet(password, primary, replica, sentinels, primary_port, replica_port, sentinel_ports)
    try:
        for process in [primary, replica, *sentinels]:
            process.start()
            process.wait_healthy(30)
        found.wait_synced()
    except BaseException:
        found.stop()
        raise
    return found
