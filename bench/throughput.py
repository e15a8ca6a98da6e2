"""Throughput and latency under load: our stack against plain Rasa, in one run.

Baseline: a ``rasa init`` bot (DIET, in-memory tracker, no action server) under
``rasa run`` from the same venv, as the Rasa a team would otherwise start from. Ours: this
tree started as a newcomer starts it (``bench/stack_latency.started_stack``: Redis, the
action server, ``rasa run`` with our channels, the handoff service). Each version gets 1,
10 and 50 concurrent conversations over the REST channel, one message at a time per
conversation (unseen paraphrases and small talk, a new conversation every 5 messages),
for ``--seconds`` each; the table gives messages a second and the round trip's p50/p99.
Client and servers share the machine's two cores, so compare the ratios.

    .venv/bin/python bench/throughput.py [--seconds 20] [--levels 1,10,50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402
from bench.stack_latency import free_port, messages, started_stack  # noqa: E402

RASA = str(Path(sys.executable).parent / "rasa")


async def load(url: str, headers: dict[str, str], texts: list[str], level: int, seconds: float) -> dict[str, float]:
    """``level`` conversations at once for ``seconds``; the messages answered in that time."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def conversation(http: aiohttp.ClientSession, worker: int) -> None:
        nonlocal errors
        sent = 0
        while time.perf_counter() < deadline:
            text = texts[(worker * 7 + sent) % len(texts)]
            body = {"sender": f"load-{level}-{worker}-{sent // 5}", "message": text}
            started = time.perf_counter()
            try:
                async with http.post(url, json=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                ok = False
            if ok and time.perf_counter() <= deadline:
                latencies.append((time.perf_counter() - started) * 1000)
            elif not ok:
                errors += 1
            sent += 1

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:
        await asyncio.gather(*(conversation(http, w) for w in range(level)))
    ordered = sorted(latencies) or [float("nan")]
    return {
        "messages": len(latencies),
        "per_s": len(latencies) / seconds,
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        "errors": errors,
    }


def run_levels(url: str, headers: dict[str, str], texts: list[str], levels: list[int], seconds: float) -> dict:
    asyncio.run(load(url, headers, texts, 2, 5))  # warm-up: caches, the first model calls
    return {level: asyncio.run(load(url, headers, texts, level, seconds)) for level in levels}


def plain_rasa(levels: list[int], texts: list[str], seconds: float) -> dict:
    """``rasa init`` (trains its model), then ``rasa run`` on a free port."""
    with tempfile.TemporaryDirectory() as project:
        subprocess.run([RASA, "init", "--no-prompt", "--init-dir", project], check=True, capture_output=True)
        port = free_port()
        process = subprocess.Popen(
            [RASA, "run", "--port", str(port), "--interface", "127.0.0.1"],
            cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.time() + 600
            while True:  # "Hello from Rasa" once the server is up
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                        break
                except OSError as exc:
                    if time.time() > deadline:
                        raise SystemExit("plain rasa did not start in 10 min") from exc
                    time.sleep(1)
            url = f"http://127.0.0.1:{port}/webhooks/rest/webhook"
            return run_levels(url, {}, texts, levels, seconds)
        finally:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def ours(levels: list[int], texts: list[str], seconds: float) -> dict:
    with started_stack(ROOT) as (url, token):
        return run_levels(url, {"Authorization": f"Bearer {token}"}, texts, levels, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--levels", default="1,10,50")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    texts = [text for conversation in messages(40) for text in conversation]
    baseline = plain_rasa(levels, texts, args.seconds)
    after = ours(levels, texts, args.seconds)
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} with `.venv/bin/python bench/throughput.py --seconds "
        f"{args.seconds:g}` on 2 shared cores (client included): REST channel, one message at a time per "
        "conversation, unseen paraphrases and small talk. Baseline: a `rasa init` bot under `rasa run` (DIET, "
        "in-memory tracker, no action server), same run. Ours: the whole stack (Redis tracker and lock store, "
        "event stream, action server with the matcher and tone model, handoff service).",
        "",
        "| conversations at once | plain Rasa msgs/s | ours msgs/s | ratio | plain p50 / p99 | ours p50 / p99 "
        "| errors (plain / ours) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for level in levels:
        b, a = baseline[level], after[level]
        lines.append(
            f"| {level} | {b['per_s']:.1f} | {a['per_s']:.1f} | {a['per_s'] / b['per_s']:.2f}x | "
            f"{b['p50']:.0f} / {b['p99']:.0f} ms | {a['p50']:.0f} / {a['p99']:.0f} ms | {b['errors']} / {a['errors']} |"
        )
    section = "\n".join(lines)
    write_section(args.out, "throughput", "Throughput under load against plain Rasa (`bench/throughput.py`)", section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
