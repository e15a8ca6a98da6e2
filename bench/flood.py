"""Another customer's latency while one sender (or one address) floods the REST channel.

Starts the real stack on free loopback ports in a temporary folder (redis-server, the
action server, ``rasa run`` with the trained model, the handoff service), with the rate
limits at their defaults (``bot/channels/guard.py``), then for each scenario:

1. **idle**: a "victim" customer asks FAQ questions one after the other (a new
   conversation for every batch of questions, paced like a fast typist), timing each
   message end to end;
2. **flood**: the same victim again while an attacker in a separate process fires
   ``POST /webhooks/rest/webhook`` as fast as ``--concurrency`` connections allow, for
   ``--seconds`` (and at most ``--max-requests``). Scenario *one sender*: one conversation.
   Scenario *many senders, one address*: ``--senders`` conversations from one address.

The victim connects from 127.0.0.2 and each attacker from its own loopback address
(127.0.0.3, 127.0.0.4); Rasa listens on 127.0.0.1. So the victim is never caught by the
attacker's per-address limit (as a customer elsewhere on the internet would not be), and
the second scenario starts with a full address bucket. Reported per scenario: victim p50
and p99 idle vs during the flood and the p99 ratio (target: within 2x), the attacker's
requests sent / accepted (200) / refused (429) / other, Rasa's CPU share and RSS.

    .venv/bin/python bench/flood.py [--seconds 20] [--concurrency 20] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import platform
import queue
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402
from bot.channels.guard import DEFAULT_ADDRESS_LIMIT, DEFAULT_SENDER_LIMIT  # noqa: E402
from bot.processes import (  # noqa: E402
    Process,
    action_server_process,
    free_port,
    handoff_process,
    rasa_process,
    redis_process,
)
from bot.ratelimit import Limit  # noqa: E402
from bot.settings import Settings, load_settings  # noqa: E402

START_TIMEOUT = 240.0
REST_TOKEN = "bench-rest-token"
WEBCHAT_SECRET = "bench-webchat-secret"
VICTIM_ADDRESS = "127.0.0.2"
QUESTIONS = [
    "How can I pay my bill?",
    "where is my order?",
    "how do I reset my password?",
    "How long does delivery take?",
    "Why is my bill higher than usual?",
]
QUESTIONS_PER_CONVERSATION = 3  # far below the per-conversation burst
ATTACK_TEXT = "where is my order?"


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    address: str
    senders: int


SCENARIOS = [
    Scenario("one-sender", "one sender", "127.0.0.3", 1),
    Scenario("one-address", "many senders, one address", "127.0.0.4", 0),  # 0: --senders
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- the stack ------------------------------------------------------------------------


@dataclass
class Stack:
    settings: Settings
    processes: list[Process]

    @property
    def rest_url(self) -> str:
        return f"{self.settings.rasa_url}/webhooks/rest/webhook"

    @property
    def rasa(self) -> Process:
        return self.processes[2]


def start_stack(folder: Path) -> Stack:
    """The stack the e2e tests run (``tests/stack.py``), rate limits left at their defaults."""
    from bot.train import train

    env = {
        "BUSINESS_HOURS_FILE": "always",  # the bot answers whatever the time of day
        "BOT_VAR_DIR": str(folder / "var"),
        "RASA_PORT": str(free_port()),
        "ACTION_PORT": str(free_port()),
        "REDIS_PORT": str(free_port()),
        "HANDOFF_PORT": str(free_port()),
        "REDIS_URL": "",
        "REST_TOKEN": REST_TOKEN,
        "WEBCHAT_SECRET": WEBCHAT_SECRET,
    }
    settings = load_settings(env, env_file=Path("/nonexistent"))
    model = train(quiet=True)
    token = uuid.uuid4().hex
    log_dir = folder / "log"
    processes = [
        redis_process(settings.redis_port, folder / "redis", log_dir),
        action_server_process(settings, log_dir),
        rasa_process(settings, model, token, log_dir),
        handoff_process(settings, token, log_dir),
    ]
    stack = Stack(settings, [])
    try:
        for process in processes:
            print(f"starting {process.name} ...", flush=True)
            process.start()
            stack.processes.append(process)
            process.wait_healthy(START_TIMEOUT)
    except BaseException:
        print("stopping what was started ...", flush=True)
        stop_stack(stack)
        raise
    stack.processes = processes
    return stack


def stop_stack(stack: Stack) -> None:
    for process in reversed(stack.processes):
        with contextlib.suppress(Exception):
            process.stop()


def rss_mb(pid: int | None) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


# --- the victim -----------------------------------------------------------------------


@dataclass
class VictimRun:
    latencies_ms: list[float] = field(default_factory=list)
    refused: int = 0  # any answer but 200 (429 would mean the attacker's limit caught the victim)
    empty: int = 0  # 200 but no bot message
    wall_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU time of each stack process meanwhile

    def cpu_percent(self, name: str) -> float:
        return 100 * self.cpu_s.get(name, float("nan")) / self.wall_s


async def victim(stack: Stack, *, count: int | None, until: asyncio.Event | None, interval: float) -> VictimRun:
    """Sequential questions from ``VICTIM_ADDRESS``: ``count`` of them, or until ``until`` is set."""
    run = VictimRun()
    headers = {"Authorization": f"Bearer {REST_TOKEN}"}
    connector = aiohttp.TCPConnector(limit=1, local_addr=(VICTIM_ADDRESS, 0))
    timeout = aiohttp.ClientTimeout(total=120)
    cpu_before, started = {p.name: cpu_seconds(p.pid) for p in stack.processes}, time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        sent = 0
        sender = ""
        while (count is None or sent < count) and not (until is not None and until.is_set()):
            if sent % QUESTIONS_PER_CONVERSATION == 0:
                sender = f"victim-{uuid.uuid4().hex[:12]}"
            question = QUESTIONS[sent % len(QUESTIONS)]
            sent += 1
            began = time.perf_counter()
            async with session.post(stack.rest_url, json={"sender": sender, "message": question}) as response:
                body = await response.json(content_type=None)
                status = response.status
            elapsed = time.perf_counter() - began
            if status != 200:
                run.refused += 1
            else:
                run.latencies_ms.append(elapsed * 1000)
                if not body:
                    run.empty += 1
            await asyncio.sleep(max(0.0, interval - elapsed))
    run.wall_s = time.perf_counter() - started
    run.cpu_s = {p.name: cpu_seconds(p.pid) - cpu_before[p.name] for p in stack.processes}
    return run


# --- the attacker (its own process, so its client work does not slow the victim's) -----


async def attack(
    rest_url: str, address: str, senders: int, seconds: float, concurrency: int, max_requests: int, started
) -> dict:
    """Send for ``seconds`` (at most ``max_requests``), then wait for the answers in flight."""
    counts = {"sent": 0, "ok": 0, "refused": 0, "other": 0, "errors": 0}
    headers = {"Authorization": f"Bearer {REST_TOKEN}"}
    connector = aiohttp.TCPConnector(limit=concurrency, local_addr=(address, 0))
    timeout = aiohttp.ClientTimeout(total=60)
    names = [f"flood-{address.rsplit('.', 1)[1]}-{i}" for i in range(senders)]
    accepted_ms: list[float] = []

    async def worker(session: aiohttp.ClientSession, deadline: float) -> None:
        while time.monotonic() < deadline and counts["sent"] < max_requests:
            sender = names[counts["sent"] % senders]
            counts["sent"] += 1
            began = time.perf_counter()
            try:
                async with session.post(rest_url, json={"sender": sender, "message": ATTACK_TEXT}) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                counts["errors"] += 1
                continue
            key = {200: "ok", 429: "refused"}.get(status, "other")
            counts[key] += 1
            if status == 200:
                accepted_ms.append((time.perf_counter() - began) * 1000)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        began = time.monotonic()
        started.set()
        await asyncio.gather(*(worker(session, began + seconds) for _ in range(concurrency)))
        counts["drain_s"] = max(0.0, time.monotonic() - began - seconds)
    cpu = os.times()
    counts["client_cpu_s"] = cpu.user + cpu.system
    counts["accepted_p50"] = statistics.median(accepted_ms) if accepted_ms else float("nan")
    return counts


def attacker_main(args: tuple, started, results) -> None:  # pragma: no cover - child process
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    results.put(asyncio.run(attack(*args, started)))


# --- one scenario ---------------------------------------------------------------------


async def flood_phase(stack: Stack, scenario: Scenario, opts: argparse.Namespace) -> tuple[VictimRun, dict]:
    """The victim measured while the attacker sends (not while its last answers drain)."""
    context = multiprocessing.get_context("spawn")
    started, results = context.Event(), context.Queue()
    senders = scenario.senders or opts.senders
    args = (stack.rest_url, scenario.address, senders, opts.seconds, opts.concurrency, opts.max_requests)
    attacker = context.Process(target=attacker_main, args=(args, started, results), daemon=True)
    attacker.start()
    try:
        # Polled rather than awaited in a thread, so Ctrl-C never waits for a blocked thread.
        deadline = time.monotonic() + 120
        while not started.is_set():
            if not attacker.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the attacker process did not start")
            await asyncio.sleep(0.05)
        done = asyncio.Event()
        asyncio.get_running_loop().call_later(opts.seconds, done.set)
        await asyncio.sleep(min(0.5, opts.seconds / 10))  # the flood reaches full speed
        run = await victim(stack, count=None, until=done, interval=opts.interval)
        deadline = time.monotonic() + 120  # bounded wait for the answers still in flight
        while True:
            with contextlib.suppress(queue.Empty):
                counts = results.get_nowait()
                break
            if not attacker.is_alive() or time.monotonic() > deadline:
                try:
                    counts = results.get(timeout=5)
                except queue.Empty:
                    raise RuntimeError(f"the attacker ended without results (exit code {attacker.exitcode})") from None
                break
            await asyncio.sleep(0.1)
    finally:
        if attacker.is_alive():
            attacker.terminate()
        attacker.join(10)
    return run, counts


async def run_scenario(stack: Stack, scenario: Scenario, opts: argparse.Namespace) -> dict:
    rasa_pid = stack.rasa.pid
    print(f"\n[{scenario.title}] idle: {opts.idle} victim messages ...", flush=True)
    idle = await victim(stack, count=opts.idle, until=None, interval=opts.interval)
    rss_before = rss_mb(rasa_pid)
    print(f"[{scenario.title}] flood for {opts.seconds:g} s, {opts.concurrency} connections ...", flush=True)
    flood, counts = await flood_phase(stack, scenario, opts)
    await asyncio.sleep(opts.settle)  # accepted turns still queued finish before RSS is read
    rss_after = rss_mb(rasa_pid)
    row = {
        "scenario": scenario.title,
        "senders": scenario.senders or opts.senders,
        "idle_n": len(idle.latencies_ms),
        "flood_n": len(flood.latencies_ms),
        "idle_p50": statistics.median(idle.latencies_ms),
        "idle_p99": percentile(idle.latencies_ms, 0.99),
        "flood_p50": statistics.median(flood.latencies_ms) if flood.latencies_ms else float("nan"),
        "flood_p99": percentile(flood.latencies_ms, 0.99) if flood.latencies_ms else float("nan"),
        "victim_refused": idle.refused + flood.refused,
        "victim_empty": idle.empty + flood.empty,
        "idle_cpu": idle.cpu_percent("rasa"),
        "flood_cpu": flood.cpu_percent("rasa"),
        "flood_cpu_all": {name: flood.cpu_percent(name) for name in flood.cpu_s},
        "window_s": flood.wall_s,
        "rss_before": rss_before,
        "rss_after": rss_after,
        **counts,
    }
    row["ratio"] = row["flood_p99"] / row["idle_p99"]
    row["rate"] = row["sent"] / opts.seconds
    cpu = ", ".join(f"{name} {value:.0f}%" for name, value in row["flood_cpu_all"].items())
    print(
        f"[{scenario.title}] victim p50 {row['idle_p50']:.0f} -> {row['flood_p50']:.0f} ms, "
        f"p99 {row['idle_p99']:.0f} -> {row['flood_p99']:.0f} ms ({row['ratio']:.1f}x); attacker sent "
        f"{row['sent']:,} ({row['rate']:.0f}/s): {row['ok']} ok, {row['refused']:,} refused, "
        f"{row['other']} other, {row['errors']} errors; Rasa CPU {row['idle_cpu']:.0f}% -> {row['flood_cpu']:.0f}%, "
        f"RSS {rss_before:.0f} -> {rss_after:.0f} MB\n    CPU while flooded: {cpu}, attacker client "
        f"{100 * row['client_cpu_s'] / (opts.seconds + row['drain_s']):.0f}%; answers in flight drained "
        f"{row['drain_s']:.1f} s after the flood; an accepted attacker request took {row['accepted_p50']:.0f} ms (p50)",
        flush=True,
    )
    return row


async def warm_up(stack: Stack) -> None:
    """The first turns after start-up are slow (lazy model parts); they are not measured."""
    await victim(stack, count=2 * len(QUESTIONS), until=None, interval=0)


# --- the report -----------------------------------------------------------------------


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({model or platform.machine()}), shared with other work"


def limit(value: Limit) -> str:
    return f"{value.burst}/{value.per_minute:g}"


def table(rows: list[dict], opts: argparse.Namespace, load: float) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} with `.venv/bin/python bench/flood.py --seconds {opts.seconds:g} "
        f"--concurrency {opts.concurrency}` on {machine()}, load average {load:.1f} at the start: "
        "compare the ratios, not the absolute figures. The real stack on loopback, rate limits at their "
        f"defaults (`RATE_LIMIT_SENDER` {limit(DEFAULT_SENDER_LIMIT)}, `RATE_LIMIT_ADDRESS` "
        f"{limit(DEFAULT_ADDRESS_LIMIT)}: burst/per minute). The victim asks FAQ questions "
        f"one at a time (a new conversation every {QUESTIONS_PER_CONVERSATION}, at most one every "
        f"{opts.interval:g} s) from {VICTIM_ADDRESS}, first idle ({opts.idle} messages), then for the whole "
        "flood; the attacker, a separate process with "
        f"{opts.concurrency} keep-alive connections from 127.0.0.3 (one sender) or 127.0.0.4 ({opts.senders} "
        f"senders in turn), sends a request whenever one is answered, for {opts.seconds:g} s; its answers still "
        "in flight then are awaited but not measured. Separate source addresses keep the victim out of the "
        "attacker's per-address bucket, as a customer elsewhere would be. CPU: share of one core used by the "
        "Rasa process while the victim was measured. Target: victim p99 during the flood within 2x of idle.",
        "",
        "| flood | victim msgs idle / flood | victim p50 idle → flood | victim p99 idle → flood | p99 ratio "
        "| attacker sent (req/s) | 200 | 429 | other / errors | Rasa CPU idle → flood | Rasa RSS before → after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        who = "1 sender" if r["senders"] == 1 else f"{r['senders']} senders, 1 address"
        verdict = "ok" if r["ratio"] <= 2 else "**over 2x**"
        lines.append(
            f"| {who} | {r['idle_n']} / {r['flood_n']} | {r['idle_p50']:.0f} → {r['flood_p50']:.0f} ms "
            f"| {r['idle_p99']:.0f} → {r['flood_p99']:.0f} ms | {r['ratio']:.1f}x ({verdict}) "
            f"| {r['sent']:,} ({r['rate']:.0f}/s) | {r['ok']:,} | {r['refused']:,} "
            f"| {r['other']} / {r['errors']} | {r['idle_cpu']:.0f}% → {r['flood_cpu']:.0f}% "
            f"| {r['rss_before']:.0f} → {r['rss_after']:.0f} MB |"
        )
    refused = sum(r["victim_refused"] for r in rows)
    empty = sum(r["victim_empty"] for r in rows)
    lines += ["", f"Victim messages refused: {refused}; answered with no bot message: {empty}."]
    return "\n".join(lines)


async def measure(stack: Stack, opts: argparse.Namespace) -> list[dict]:
    await warm_up(stack)
    rows = []
    for scenario in SCENARIOS:
        if opts.only and scenario.key not in opts.only:
            continue
        rows.append(await run_scenario(stack, scenario, opts))
    return rows


def interrupted(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each flood lasts")
    parser.add_argument("--concurrency", type=int, default=20, help="the attacker's connections")
    parser.add_argument("--max-requests", type=int, default=100_000, help="bound on each flood's requests")
    parser.add_argument("--senders", type=int, default=200, help="senders in the one-address flood")
    parser.add_argument("--idle", type=int, default=60, help="victim messages measured idle")
    parser.add_argument("--interval", type=float, default=0.25, help="victim: at most one message per this many s")
    parser.add_argument("--settle", type=float, default=3.0, help="pause after a flood before RSS is read")
    parser.add_argument("--only", nargs="+", choices=[s.key for s in SCENARIOS], help="run only these scenarios")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs) at the end")
    parser.add_argument("--write", action="store_true", help="write the table into --out")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    opts = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("redis-server is not installed (make setup installs it)", file=sys.stderr)
        return 1
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    signal.signal(signal.SIGTERM, interrupted)  # stops the stack as Ctrl-C does
    load = os.getloadavg()[0]
    folder = Path(tempfile.mkdtemp(prefix="bench-flood-"))
    stack = None
    try:
        stack = start_stack(folder)
        rows = asyncio.run(measure(stack, opts))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if stack is not None:
            print("stopping the stack ...", flush=True)
            stop_stack(stack)
        if opts.keep:
            print(f"logs kept in {folder / 'log'}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    section = table(rows, opts, load)
    print("\n" + section)
    if opts.write:
        write_section(opts.out, "flood", "Flood from one sender (`bench/flood.py`)", section)
        print(f"wrote {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
