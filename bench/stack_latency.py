"""Per-message latency of the whole stack, before and after, measured in one run.

Each version is started exactly as a newcomer starts it (``python -m bot.run``, which trains
its model if needed and starts Redis, the action server, ``rasa run`` and the handoff
service) on free ports with its own temporary data folder; "before" is the baseline commit
checked out into a temporary git worktree. The same customer messages (the unseen
paraphrases, vague messages and small talk of ``tests/data/paraphrases.yml``, a few turns
per conversation, one message at a time) go through the REST channel; the table gives the
round trip from POST to the bot's reply.

    .venv/bin/python bench/stack_latency.py [--baseline COMMIT] [--conversations 15]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402

BASELINE = "86b168f"  # main before the sentence encoder (issue 9)
SMALL_TALK = ["hi", "thanks!", "are you a bot?", "ok", "bye"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def messages(conversations: int) -> list[list[str]]:
    data = yaml.safe_load((ROOT / "tests" / "data" / "paraphrases.yml").read_text(encoding="utf-8"))
    questions = [i["text"] for i in data["paraphrases"]] + [i["text"] for i in data["ambiguous"]]
    return [[SMALL_TALK[n % 2], questions[(3 * n) % len(questions)], questions[(3 * n + 1) % len(questions)],
             questions[(3 * n + 2) % len(questions)], SMALL_TALK[2 + n % 3]] for n in range(conversations)]  # fmt: skip


@contextlib.contextmanager
def started_stack(tree: Path, extra: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """The stack of ``tree`` started as a newcomer starts it (``python -m bot.run``) on free
    ports with its own data folder (``extra`` settings on top); yields the REST channel's URL
    and token."""
    token = secrets.token_hex(16)
    rasa_port = free_port()
    with tempfile.TemporaryDirectory() as var:
        env = {
            **os.environ,
            "BOT_VAR_DIR": var,
            "RASA_PORT": str(rasa_port),
            "ACTION_PORT": str(free_port()),
            "REDIS_PORT": str(free_port()),
            "HANDOFF_PORT": str(free_port()),
            "REST_TOKEN": token,
            "RATE_LIMIT_SENDER": "1000/6000",
            "RATE_LIMIT_ADDRESS": "100000/100000",
            "TURNS_PER_ADDRESS": "1000",
            "BUSINESS_HOURS_FILE": "always",
            "PYTHONUNBUFFERED": "1",
            **(extra or {}),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.run"], cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip
        ready = threading.Event()

        def read() -> None:
            for line in process.stdout:
                if "Press Ctrl-C" in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        try:
            if not ready.wait(900):
                raise SystemExit(f"{tree}: the stack did not start in 15 min")
            yield f"http://127.0.0.1:{rasa_port}/webhooks/rest/webhook", token
        finally:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def measure(tree: Path, conversations: list[list[str]]) -> list[float]:
    with started_stack(tree) as (url, token):
        samples = []
        for number, turns in enumerate(conversations):
            for turn, text in enumerate(turns):
                body = json.dumps({"sender": f"bench{number}", "message": text}).encode()
                request = urllib.request.Request(url, body, {"Authorization": f"Bearer {token}",
                                                             "Content-Type": "application/json"})  # fmt: skip
                started = time.perf_counter()
                with urllib.request.urlopen(request, timeout=60) as response:
                    response.read()
                if number or turn >= 2:  # the first two messages warm the caches
                    samples.append((time.perf_counter() - started) * 1000)
        return samples


def row(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    p90 = ordered[min(len(ordered) - 1, round(0.90 * (len(ordered) - 1)))]
    return f"| {name} | {len(samples)} | {statistics.median(samples):.0f} ms | {p90:.0f} ms | {p99:.0f} ms |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--conversations", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    conversations = messages(args.conversations)
    with tempfile.TemporaryDirectory() as temporary:
        worktree = Path(temporary) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.baseline], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            before = measure(worktree, conversations)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)
    after = measure(ROOT, conversations)
    ratio = statistics.median(after) / statistics.median(before)
    section = "\n".join(
        [
            f"One message at a time over the REST channel, {args.conversations} conversations of 5 turns (small "
            f"talk and unseen paraphrases), measured {time.strftime('%Y-%m-%d')} in one run on this 2-core machine; "
            f"before = commit `{args.baseline}` (DIET, rapidfuzz matcher), after = this tree (sentence encoder "
            f"in NLU, matcher and tone model). Median after / before: {ratio:.2f}x.",
            "",
            "| version | messages | p50 | p90 | p99 |",
            "|---|---:|---:|---:|---:|",
            row("before", before),
            row("after", after),
        ]
    )
    write_section(args.out, "stack_latency", "Whole-stack latency per message (`bench/stack_latency.py`)", section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
