"""How much the bot understands, on held-out data, before and after, in one run.

Both versions are driven through their command-line contracts, so "before" is exactly the
product as it was: the baseline commit is checked out into a temporary git worktree and its
own ``python -m bot.kb match`` (with its own knowledge base) and ``python -m bot.frustration``
read the same held-out messages as today's.

* **Knowledge base**: ``tests/data/heldout/kb_queries.csv`` (written for this purpose, never
  used to tune; ``none`` = the KB does not cover it). Right entry first, answered directly,
  right when answered, out-of-scope not answered, for English and for the other languages.
  The bot row adds the NLU model in front of the matcher, as customers meet it: a message it
  classifies as small talk, keyboard mashing or out of scope never reaches the matcher.
* **Frustration**: ``tests/data/frustration/heldout.jsonl``, each message as a one-turn
  conversation: the share of clearly angry messages handed off at once, of annoyed ones, and
  of calm ones (must stay near zero), per language. ``heldout_narrative.jsonl`` the same way:
  240 messages written on 2026-12-03 by a session that never saw the code or the training
  data, each about a different situation, most of the angry ones a story with the anger in
  a few words (see docs/benchmarks.md for what it showed). Its misses were read once, in
  stop 23, to try scoring each sentence's tone (not adopted); it is not to be tuned on.

    .venv/bin/python bench/understanding.py [--baseline COMMIT] [--no-bot]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402
from bot.kb.evaluate import read_cases  # noqa: E402
from bot.language import guess_language  # noqa: E402

BASELINE = "86b168f"  # main before the sentence encoder (issue 9)
KB_QUERIES = ROOT / "tests" / "data" / "heldout" / "kb_queries.csv"
TONE = ROOT / "tests" / "data" / "frustration" / "heldout.jsonl"
NARRATIVE = ROOT / "tests" / "data" / "frustration" / "heldout_narrative.jsonl"
MERGED = {"intl-pay-bill": "billing-pay-bill", "intl-no-internet": "outages-no-internet",
          "intl-roaming-abroad": "plans-travel-pass"}  # fmt: skip
MARKER = "understanding"


def run_lines(command: list[str], cwd: Path, lines: list[str]) -> list[dict]:
    result = subprocess.run(
        command, cwd=cwd, input="\n".join(lines) + "\n", capture_output=True, text=True, check=True, timeout=3600
    )
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def kb_figures(rows: list[tuple[str | None, dict]]) -> dict[str, float]:
    """rows: (expected id or None, match JSON)."""
    in_scope = [(e, m) for e, m in rows if e]
    oos = [m for e, m in rows if not e]

    def top(m: dict) -> str | None:
        return MERGED.get(m["candidates"][0]["id"], m["candidates"][0]["id"]) if m["candidates"] else None

    answered = [(e, m) for e, m in in_scope if m["decision"] == "answer"]
    return {
        "n": len(in_scope),
        "n_oos": len(oos),
        "right_first": sum(top(m) == e for e, m in in_scope) / max(1, len(in_scope)),
        "answered": len(answered) / max(1, len(in_scope)),
        "right_when_answered": sum(MERGED.get(m["id"], m["id"]) == e for e, m in answered) / max(1, len(answered)),
        "oos_declined": sum(m["decision"] != "answer" for m in oos) / max(1, len(oos)),
    }


def bot_decisions(queries: list[str], matches: list[dict]) -> list[dict]:
    """What customers meet: the NLU model first; only support questions reach the matcher."""
    from rasa.core.agent import Agent

    from bot.train import model_path

    agent = Agent.load(str(model_path()[0]))
    out = []
    for query, match in zip(queries, matches, strict=True):
        intent = asyncio.run(agent.parse_message(query))["intent"]["name"]
        out.append(match if intent in ("faq", "nlu_fallback") else {**match, "decision": "none", "id": None})
    return out


def kb_table(before: list[dict], after: list[dict], bot: list[dict] | None, cases) -> list[str]:
    groups = {"all": lambda q: True, "English": lambda q: guess_language(q) == "en",
              "other languages": lambda q: guess_language(q) != "en"}  # fmt: skip
    lines = [
        "| version | questions | in scope / out of scope | right entry first | answered directly "
        "| right when answered | out of scope not answered |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    versions = [("before (rapidfuzz)", before), ("after: matcher", after)] + (
        [("after: bot (NLU + matcher)", bot)] if bot else []
    )
    for name, matches in versions:
        for group, keep in groups.items():
            rows = [(c.expected, m) for c, m in zip(cases, matches, strict=True) if keep(c.query)]
            f = kb_figures(rows)
            lines.append(
                f"| {name} | {group} | {f['n']} / {f['n_oos']} | {f['right_first']:.1%} | {f['answered']:.1%} "
                f"| {f['right_when_answered']:.1%} | {f['oos_declined']:.1%} |"
            )
    return lines


def tone_table(messages: list[dict], before: list[dict], after: list[dict]) -> list[str]:
    by: dict[tuple[str, str, str], list[bool]] = defaultdict(list)
    for message, old, new in zip(messages, before, after, strict=True):
        language = message["lang"].split("-")[0]
        for name, decision in (("before", old), ("after", new)):
            by[(name, language, message["label"])].append(bool(decision.get("handoff")))
            by[(name, "all", message["label"])].append(bool(decision.get("handoff")))
    languages = ["all", *sorted({m["lang"].split("-")[0] for m in messages})]
    lines = [
        "| language | angry: handed off at once (before → after) | annoyed | calm: handed off (before → after) |",
        "|---|---:|---:|---:|",
    ]
    for language in languages:
        cells = []
        for label in ("angry", "annoyed", "calm"):
            old, new = by[("before", language, label)], by[("after", language, label)]
            if not new:
                cells.append("–")
                continue
            cells.append(f"{sum(old) / len(old):.0%} → {sum(new) / len(new):.0%} (n={len(new)})")
        lines.append(f"| {language} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help="commit measured as 'before'")
    parser.add_argument("--no-bot", action="store_true", help="skip the NLU model (no trained model here)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    cases = read_cases(KB_QUERIES)
    queries = [c.query for c in cases]
    messages = [json.loads(line) for line in TONE.read_text(encoding="utf-8").splitlines() if line.strip()]
    narrative = [json.loads(line) for line in NARRATIVE.read_text(encoding="utf-8").splitlines() if line.strip()]
    conversations = [json.dumps({"turns": [m["text"]]}, ensure_ascii=False) for m in messages + narrative]
    python = sys.executable
    with tempfile.TemporaryDirectory() as temporary:
        worktree = Path(temporary) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.baseline], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            before = run_lines([python, "-m", "bot.kb", "match"], worktree, queries)
            tone_before = run_lines([python, "-m", "bot.frustration"], worktree, conversations)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)
    after = run_lines([python, "-m", "bot.kb", "match"], ROOT, queries)
    tone_after = run_lines([python, "-m", "bot.frustration"], ROOT, conversations)
    split = len(messages)
    tone_before, narrative_before = tone_before[:split], tone_before[split:]
    tone_after, narrative_after = tone_after[:split], tone_after[split:]
    bot = None if args.no_bot else bot_decisions(queries, after)
    section = [
        f"Held-out questions `{KB_QUERIES.relative_to(ROOT)}` ({len(cases)}) and messages "
        f"`{TONE.relative_to(ROOT)}` ({len(messages)}), never used for tuning; before = commit "
        f"`{args.baseline}` with its own knowledge base, run through the same command-line contracts "
        "(`python -m bot.kb match`, `python -m bot.frustration`) in the same run. Language groups by "
        "`bot.language.guess_language`.",
        "",
        *kb_table(before, after, bot, cases),
        "",
        "Frustration, one message as a whole conversation (the cross-turn signals are not exercised here):",
        "",
        *tone_table(messages, tone_before, tone_after),
        "",
        f"The same for `{NARRATIVE.relative_to(ROOT)}` ({len(narrative)}): each message about a different "
        "situation, most angry ones a story with the anger in a few words, written by a session that never "
        "saw the code or the training data:",
        "",
        *tone_table(narrative, narrative_before, narrative_after),
        "",
        *(
            f"Calm messages handed off in `{path.name}` after: {len(reasons)}, for "
            + (", ".join(f"{reason} {reasons.count(reason)}" for reason in sorted(set(reasons))) or "none")
            + " (a sensitive topic, such as a formal complaint or a suspected fraud, always goes to a person)."
            for path, rows, decisions in ((TONE, messages, tone_after), (NARRATIVE, narrative, narrative_after))
            for reasons in [
                [
                    d.get("reason")
                    for m, d in zip(rows, decisions, strict=True)
                    if m["label"] == "calm" and d.get("handoff")
                ]
            ]
        ),
    ]
    write_section(args.out, MARKER, "Understanding on held-out data (`bench/understanding.py`)", "\n".join(section))
    print("\n".join(section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
