"""Match latency of the knowledge-base matcher for 100, 1,000 and 5,000 entries.

Knowledge bases of each size are built from the demo KB: its real entries first, then
copies whose phrasings carry a distinct product/plan word, so every entry is unique and
the vocabulary grows as a real catalogue's would. Queries are the unseen customer
phrasings of ``tests/data/paraphrases.yml``.

The machine is shared and noisy, so alongside absolute numbers each size reports the
ratio to a baseline measured in the same run on the same phrasings: one plain
``rapidfuzz.process.extractOne(..., scorer=WRatio)`` call, the least a fuzzy FAQ
matcher does. Writes the table to ``docs/benchmarks.md``.

    .venv/bin/python bench/kb_match.py [--sizes 100 1000 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import yaml
from rapidfuzz import fuzz, process, utils

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.kb import Matcher, load  # noqa: E402
from bot.kb.model import KnowledgeBase  # noqa: E402

MARKER_START = "<!-- kb_match:start -->"
MARKER_END = "<!-- kb_match:end -->"
PRODUCTS = [
    "nova",
    "flex",
    "lite",
    "max",
    "pro",
    "ultra",
    "home",
    "office",
    "family",
    "student",
    "senior",
    "travel",
    "gamer",
    "fibre",
    "air",
]


def synthetic_kb(base: KnowledgeBase, size: int, seed: int = 7) -> KnowledgeBase:
    rng = random.Random(seed)
    entries = list(base.entries[:size])
    copy = 0
    while len(entries) < size:
        copy += 1
        for entry in base.entries:
            if len(entries) >= size:
                break
            tag = f"{rng.choice(PRODUCTS)}{copy}"

            def tagged(text: str, tag: str = tag) -> str:
                return f"{text} {tag}"

            entries.append(
                replace(
                    entry,
                    id=f"{entry.id}-{copy}",
                    question={k: tagged(v) for k, v in entry.question.items()},
                    alternatives={k: tuple(tagged(v) for v in vs) for k, vs in entry.alternatives.items()},
                    buttons=(),
                )
            )
    return KnowledgeBase.of(entries)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn, queries: list[str], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        for query in queries:
            started = time.perf_counter()
            fn(query)
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def measure(kb: KnowledgeBase, queries: list[str], rounds: int) -> dict:
    tracemalloc.start()
    started = time.perf_counter()
    matcher = Matcher(kb)
    build_ms = (time.perf_counter() - started) * 1000
    memory_mb = tracemalloc.get_traced_memory()[0] / 1e6
    tracemalloc.stop()
    choices = [utils.default_process(text) for entry in kb.entries for _, text in entry.variants()]
    for query in queries[:5]:  # warm caches for both
        matcher.match(query)
    ours = timed(matcher.match, queries, rounds)
    baseline = timed(
        lambda q: process.extractOne(utils.default_process(q), choices, scorer=fuzz.WRatio, processor=None),
        queries,
        rounds,
    )
    return {
        "entries": len(kb),
        "phrasings": len(choices),
        "build_ms": build_ms,
        "memory_mb": memory_mb,
        "p50": statistics.median(ours),
        "p99": percentile(ours, 0.99),
        "base_p50": statistics.median(baseline),
        "base_p99": percentile(baseline, 0.99),
    }


def table(rows: list[dict], rounds: int, queries: int) -> str:
    lines = [
        MARKER_START,
        f"Match latency per query ({queries} queries x {rounds} rounds; measured {time.strftime('%Y-%m-%d')}, "
        "`make bench`). Baseline: one `rapidfuzz.process.extractOne` with `WRatio` over the same phrasings.",
        "",
        "| entries | phrasings | index build | index memory | p50 | p99 "
        "| baseline p50 | baseline p99 | p50 / baseline |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['entries']:,} | {r['phrasings']:,} | {r['build_ms']:.0f} ms | {r['memory_mb']:.1f} MB "
            f"| {r['p50']:.2f} ms | {r['p99']:.2f} ms | {r['base_p50']:.2f} ms | {r['base_p99']:.2f} ms "
            f"| {r['p50'] / r['base_p50']:.1f}x |"
        )
    lines.append(MARKER_END)
    return "\n".join(lines)


def write_report(section: str, path: Path) -> None:
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if MARKER_START in text and MARKER_END in text:
            head, rest = text.split(MARKER_START, 1)
            tail = rest.split(MARKER_END, 1)[1]
            path.write_text(head + section + tail, encoding="utf-8")
            return
    else:
        text = "# Benchmarks\n\nRepeatable measurements; each script rewrites its own section.\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n\n## Knowledge-base matching (`bench/kb_match.py`)\n\n" + section + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    base = load(ROOT / "data" / "faq")
    evaluation = yaml.safe_load((ROOT / "tests" / "data" / "paraphrases.yml").read_text(encoding="utf-8"))
    queries = [i["text"] for i in evaluation["paraphrases"]] + [i["text"] for i in evaluation["ambiguous"]]
    rows = []
    for size in args.sizes:
        row = measure(synthetic_kb(base, size), queries, args.rounds)
        rows.append(row)
        print(
            f"{row['entries']:>6} entries: p50 {row['p50']:.2f} ms, p99 {row['p99']:.2f} ms "
            f"(baseline p50 {row['base_p50']:.2f} ms), build {row['build_ms']:.0f} ms",
            flush=True,
        )
    section = table(rows, args.rounds, len(queries))
    write_report(section, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
