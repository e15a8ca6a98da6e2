"""One node against two: the same load through HAProxy to one replica of each process, then
to two (tests/cluster.py), on one Redis, in one run.

For each topology: messages a second and round trips at 10 and 50 conversations at once
(bench/throughput.py's load), then the handoff path at 200 chats (bench/handoff_scale.py's
scenario: 200 handoffs at once, taking a chat with 200 waiting, messages both ways across 200
open chats). Both "nodes" share this machine's two cores, so the second node adds no CPU:
the figures show what the replicated topology costs and that it holds the same targets,
not how far a second machine scales.

    .venv/bin/python bench/two_nodes.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis.asyncio import Redis  # noqa: E402

from bench.handoff_scale import AGENTS, CAPACITY, PASSWORD, percentile, scenario  # noqa: E402
from bench.report import write_section  # noqa: E402
from bench.stack_latency import messages  # noqa: E402
from bench.throughput import load  # noqa: E402
from bot.processes import free_port, redis_process, service_env  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from bot.train import train  # noqa: E402
from tests.cluster import start_cluster  # noqa: E402
from tests.e2e.clients import WEBCHAT_SECRET  # noqa: E402

TOKEN = "bench-rest-token"


def measure(replicas: int, seconds: float, texts: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        var = Path(folder)
        port, password = free_port(), uuid.uuid4().hex
        redis = redis_process(port, var / "redis", var / "log", password=password)
        redis.start()
        redis.wait_healthy(30)
        env = {
            "BOT_VAR_DIR": str(var),
            "REDIS_URL": f"redis://:{password}@127.0.0.1:{port}/0",
            "REST_TOKEN": TOKEN,
            "WEBCHAT_SECRET": WEBCHAT_SECRET,
            "BUSINESS_HOURS_FILE": "always",
            "RATE_LIMIT_SENDER": "100000/100000",
            "RATE_LIMIT_ADDRESS": "100000/100000",
            "TURNS_PER_ADDRESS": "1000",
            "PROXIES_COUNT": "1",
        }
        settings = load_settings(env, env_file=ROOT / "nonexistent")
        cluster = start_cluster(settings, train(quiet=True), var / "log", replicas=replicas)
        try:
            url = f"{cluster.rasa_url}/webhooks/rest/webhook"
            headers = {"Authorization": f"Bearer {TOKEN}"}
            asyncio.run(load(url, headers, texts, 2, 5))  # warm-up
            result = {level: asyncio.run(load(url, headers, texts, level, seconds)) for level in (10, 50)}
            names = [f"bench{n}" for n in range(AGENTS)]
            for name in names:
                command = [sys.executable, "-m", "handoff.agents", "add", name, "--password-stdin"]
                command += ["--capacity", str(CAPACITY)]
                subprocess.run(command, input=PASSWORD + "\n", env={**os.environ, **service_env(cluster.settings)},
                               capture_output=True, text=True, timeout=120, check=True)  # fmt: skip

            async def handoffs() -> dict:
                client = Redis(port=port, password=password)
                try:
                    return await scenario(cluster.rasa_url, cluster.console_url, client, names, seconds)
                finally:
                    await client.close()

            result["handoff"] = asyncio.run(handoffs())
            return result
        finally:
            cluster.stop()
            redis.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--nodes", default="1,2")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    texts = [text for conversation in messages(40) for text in conversation]
    results = {n: measure(n, args.seconds, texts) for n in (int(x) for x in args.nodes.split(","))}
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} with `.venv/bin/python bench/two_nodes.py --seconds {args.seconds:g}`: "
        "the same load through HAProxy to one node (one replica of Rasa, the action server and the handoff "
        "service) and to two, one Redis. Both nodes share this machine's two cores (and the load generator), so "
        "the second node adds no CPU here: the table shows that the replicated topology keeps the figures, "
        "not how far a second machine scales.",
        "",
        "| nodes | msgs/s at 10 | msgs/s at 50 | p50 / p99 at 50 | reader behind, 200 handoffs | take a chat, "
        "200 waiting (median / max) | customer → agent p50 / p99 | agent → customer p50 / p99 | lost |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for nodes, r in results.items():
        h = r["handoff"]
        lines.append(
            f"| {nodes} | {r[10]['per_s']:.1f} | {r[50]['per_s']:.1f} | {r[50]['p50']:.0f} / {r[50]['p99']:.0f} ms "
            f"| {h['behind_max'] / 1000:.1f} s | {percentile(h['claims'], 0.5):.0f} / {max(h['claims']):.0f} ms "
            f"| {percentile(h['to_agent'], 0.5):.0f} / {percentile(h['to_agent'], 0.99):.0f} ms "
            f"| {percentile(h['to_customer'], 0.5):.0f} / {percentile(h['to_customer'], 0.99):.0f} ms | {h['lost']} |"
        )
    section = "\n".join(lines)
    write_section(args.out, "two_nodes", "One node against two behind HAProxy (`bench/two_nodes.py`)", section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
