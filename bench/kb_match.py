"""Match latency of the knowledge-base matcher for 100, 1,000 and 5,000 entries, before and after.

Knowledge bases of each size are built from the demo KB: its real entries first, then
copies whose phrasings carry a distinct product/plan word, so every entry is unique and
the vocabulary grows as a real catalogue's would. Queries are the unseen customer
phrasings of ``tests/data/paraphrases.yml``.

* **after**: ``bot.kb.matcher.Matcher`` (sentence encoder + rapidfuzz), timed per query
  *including* embedding the query (the encoder's cache is bypassed), as a message the NLU
  did not embed would cost;
* **before**: ``bot.kb.fuzzy.FuzzyMatcher``, the rapidfuzz matcher it replaced;
* **reload**: building the matcher again after one phrasing changed, from the previous
  matcher (as the store does): what an editor's save costs, on a background thread;
* **live after save**: the KB written as YAML files of 100 entries, served by the live
  store (``bot.kb.store``, its watcher checking four times a second); one file is saved with a
  new phrasing and the clock runs until the store serves it: detection, parsing the one
  changed file, and the rebuild;
* **cold build**: embedding a KB from nothing, measured on ``--cold`` entries and
  projected linearly (it is linear in texts) to the largest size.

The copies' vectors: a demo entry written in six languages has about 60 phrasings, so the
5,000-entry KB holds about 300,000 texts, some 80 minutes of embedding on one core. By
default each copy's phrasing gets its source phrasing's real vector plus a little of its
product word's real vector (normalised): the matrices, pools and candidate sets a query
meets have the sizes of a real 5,000-entry KB, which is what the timing depends on.
``--embed-copies`` embeds every copy for real instead (vectors go to
``var/bench-vectors.npz``, not the bot's own file, so only the first such run pays).

    .venv/bin/python bench/kb_match.py [--sizes 100 1000 5000] [--rounds 3] [--cold 100] [--embed-copies]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ENCODER_VECTORS_FILE", str(ROOT / "var" / "bench-vectors.npz"))

from bench.report import write_section  # noqa: E402
from bot.kb import Matcher, load  # noqa: E402
from bot.kb.fuzzy import FuzzyMatcher  # noqa: E402
from bot.kb.model import KnowledgeBase  # noqa: E402
from bot.nlu.encoder import Encoder, get_encoder, save_vectors  # noqa: E402

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


def seed_copy_vectors(base: KnowledgeBase, kb: KnowledgeBase) -> int:
    """Put vectors for the copies of ``synthetic_kb`` into the encoder's cache (see the
    module docstring): source vector + 0.3 x the product word's vector, normalised."""
    import numpy as np

    from bot.kb.matcher import passage_texts
    from bot.nlu.encoder import PASSAGE, QUERY, text_key

    encoder = get_encoder()
    sources = {entry.id: entry for entry in base.entries}
    copies = [e for e in kb.entries if e.id not in sources]
    tags = sorted({next(iter(e.question.values())).rsplit(" ", 1)[1] for e in copies})
    tag_vectors = dict(zip(tags, encoder.embed(tags), strict=True))
    seeded = 0
    for copy in copies:
        source = sources[copy.id.rsplit("-", 1)[0]]
        tag = tag_vectors[next(iter(copy.question.values())).rsplit(" ", 1)[1]]
        for kind, texts_of in ((QUERY, lambda e: [t for _, t in e.variants()]), (PASSAGE, passage_texts)):
            if kind == PASSAGE:
                source_texts, copy_texts = [t for _, t in texts_of(source)], [t for _, t in texts_of(copy)]
            else:
                source_texts, copy_texts = texts_of(source), texts_of(copy)
            vectors = encoder.embed(source_texts, kind) + 0.3 * tag
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            with encoder._lock:
                for text, vector in zip(copy_texts, vectors.astype(np.float32), strict=True):
                    vector.setflags(write=False)
                    encoder._cache[text_key(text, kind)] = vector
            seeded += len(copy_texts)
    return seeded


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


def measure(kb: KnowledgeBase, queries: list[str], rounds: int, save: bool = True) -> dict:
    encoder = get_encoder()
    tracemalloc.start()
    started = time.perf_counter()
    matcher = Matcher(kb)
    build_s = time.perf_counter() - started
    memory_mb = tracemalloc.get_traced_memory()[0] / 1e6
    tracemalloc.stop()
    if save:  # never save the seeded copies' vectors as if they were real ones
        save_vectors()
    fuzzy = FuzzyMatcher(kb)
    # One phrasing edited: the reload embeds it and rebuilds everything else from the cache.
    first = kb.entries[0]
    language = next(iter(first.alternatives))
    edited = replace(first, alternatives={**first.alternatives, language: (*first.alternatives[language], "edit")})
    started = time.perf_counter()
    Matcher(KnowledgeBase.of([edited, *kb.entries[1:]]), previous=matcher)
    reload_s = time.perf_counter() - started
    first_load_s, live_s = live_after_save(kb)

    def ours(query: str) -> None:
        vector = encoder.compute([query])[0]  # no cache: the full cost of a new message
        matcher.match(query, vector=vector)

    for query in queries[:5]:
        ours(query)
        fuzzy.match(query)
    after = timed(ours, queries, rounds)
    before = timed(fuzzy.match, queries, rounds)
    # In the stack the query arrives embedded (Rasa's NLU did it; actions/escalation.py reuses it).
    vectors = {query: encoder.compute([query])[0] for query in queries}
    shared = timed(lambda query: matcher.match(query, vector=vectors[query]), queries, rounds)
    return {
        "entries": len(kb),
        "phrasings": len(matcher),
        "build_s": build_s,
        "reload_s": reload_s,
        "first_load_s": first_load_s,
        "live_s": live_s,
        "memory_mb": memory_mb,
        "p50": statistics.median(after),
        "p99": percentile(after, 0.99),
        "base_p50": statistics.median(before),
        "base_p99": percentile(before, 0.99),
        "shared_p50": statistics.median(shared),
        "shared_p99": percentile(shared, 0.99),
    }


def entry_yaml(entry) -> dict:
    """An entry as an editor would write it (what the loader reads back)."""
    out = {
        "id": entry.id,
        "question": dict(entry.question),
        "alternatives": {k: list(v) for k, v in entry.alternatives.items()},
    }
    out["answer"] = dict(entry.answer)
    out["tags"] = list(entry.tags) or ["general"]
    if entry.links:
        out["links"] = [{"title": dict(link.title), "url": link.url} for link in entry.links]
    return out


def live_after_save(kb: KnowledgeBase, per_file: int = 100) -> tuple[float, float]:
    """Seconds for the store's first load of ``kb`` from YAML files (vectors cached), and
    from saving one edited file until the store serves the edit."""
    import tempfile

    from bot.kb.result import MatchSettings
    from bot.kb.store import KnowledgeBaseStore

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        files = []
        for number in range(0, len(kb.entries), per_file):
            path = folder / f"part{number // per_file:03d}.yml"
            entries = [entry_yaml(e) for e in kb.entries[number : number + per_file]]
            path.write_text(yaml.safe_dump({"entries": entries}, allow_unicode=True, sort_keys=False), encoding="utf-8")
            files.append(path)
        started = time.perf_counter()
        store = KnowledgeBaseStore(folder, MatchSettings())  # as the action server runs it
        store.wait()
        first_load_s = time.perf_counter() - started
        store.watch()
        path = files[len(files) // 2]
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        entry = data["entries"][0]
        entry["alternatives"]["en"].append("a wording an editor just added")
        time.sleep(0.1)  # the watcher is somewhere in its wait between checks, as in real life
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)  # the editor's save, not timed
        started = time.perf_counter()
        path.write_text(text, encoding="utf-8")
        while "a wording an editor just added" not in store.kb.get(entry["id"]).alternatives["en"]:
            time.sleep(0.01)
        live_s = time.perf_counter() - started
        store.stop()
        return first_load_s, live_s


def cold_build(kb: KnowledgeBase) -> tuple[int, float]:
    """Texts embedded and seconds taken to build the matcher with an empty cache."""
    encoder = Encoder(threads=int(os.environ.get("ENCODER_THREADS") or 1))
    started = time.perf_counter()
    Matcher(kb, encoder=encoder)
    return encoder.computed, time.perf_counter() - started


def table(rows: list[dict], rounds: int, queries: int, cold: tuple[int, int, float], source: str) -> str:
    entries, texts, seconds = cold
    largest = rows[-1]
    projected = seconds / max(1, texts) * (largest["phrasings"] + largest["entries"])
    lines = [
        f"Per query ({queries} queries x {rounds} rounds; measured {time.strftime('%Y-%m-%d')}, `make bench`), "
        "after = sentence encoder + rapidfuzz, *including* embedding the query on one thread; before = the "
        f"rapidfuzz matcher it replaced (`bot.kb.fuzzy.FuzzyMatcher`), same run; *in the stack* = the matcher "
        "given the query's vector, as the action server is (Rasa's NLU embedded the message once). "
        f"Sizes built from {source}.",
        "",
        "| entries | phrasings | build (vectors cached) | reload after one edit | first load from files "
        "| live after save | memory | after p50 | after p99 | in the stack p50 / p99 | before p50 | before p99 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['entries']:,} | {r['phrasings']:,} | {r['build_s']:.2f} s | {r['reload_s']:.2f} s "
            f"| {r['first_load_s']:.1f} s | {r['live_s']:.2f} s "
            f"| {r['memory_mb']:.0f} MB | {r['p50']:.1f} ms | {r['p99']:.1f} ms "
            f"| {r['shared_p50']:.1f} / {r['shared_p99']:.1f} ms | {r['base_p50']:.1f} ms "
            f"| {r['base_p99']:.1f} ms |"
        )
    lines += [
        "",
        f"Cold build (empty cache): {entries} entries, {texts:,} texts embedded in {seconds:.0f} s; at that rate "
        f"the {largest['entries']:,}-entry KB's {largest['phrasings'] + largest['entries']:,}+ texts take about "
        f"{projected / 60:.0f} min. It happens once: vectors are saved (`ENCODER_VECTORS_FILE`) and a reload "
        "embeds only what changed, on a background thread while the old KB answers.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold", type=int, default=100, help="entries embedded from nothing for the cold build")
    parser.add_argument("--kb", type=Path, default=ROOT / "data" / "faq", help="the demo KB the sizes are built from")
    parser.add_argument("--embed-copies", action="store_true", help="embed every copy for real (slow)")
    parser.add_argument("--label", help="how the table names --kb (default: its path)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    base = load(args.kb)
    evaluation = yaml.safe_load((ROOT / "tests" / "data" / "paraphrases.yml").read_text(encoding="utf-8"))
    queries = [i["text"] for i in evaluation["paraphrases"]] + [i["text"] for i in evaluation["ambiguous"]]
    rows = []
    Matcher(base)
    save_vectors()  # the demo KB's real vectors, kept for the next run (copies' are never saved)
    for size in args.sizes:
        kb = synthetic_kb(base, size)
        if not args.embed_copies:
            seed_copy_vectors(base, kb)
        row = measure(kb, queries, args.rounds, save=args.embed_copies)
        rows.append(row)
        print(
            f"{row['entries']:>6} entries: after p50 {row['p50']:.1f} ms p99 {row['p99']:.1f} ms; before p50 "
            f"{row['base_p50']:.1f} ms p99 {row['base_p99']:.1f} ms; build {row['build_s']:.2f} s, "
            f"reload {row['reload_s']:.2f} s, first load from files {row['first_load_s']:.1f} s, "
            f"live after save {row['live_s']:.2f} s",
            flush=True,
        )
    texts, seconds = cold_build(synthetic_kb(base, args.cold))
    print(f"cold build: {args.cold} entries, {texts} texts in {seconds:.0f} s", flush=True)
    source = args.label or ("the demo KB" if args.kb == ROOT / "data" / "faq" else f"`{args.kb}`")
    if not args.embed_copies:
        source += " (copies' vectors derived from their source phrasings' real vectors, see the script)"
    section = table(rows, args.rounds, len(queries), (args.cold, texts, seconds), source)
    write_section(args.out, "kb_match", "Knowledge-base matching (`bench/kb_match.py`)", section)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
