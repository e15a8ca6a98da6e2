"""Command line for editors and tools.

``python -m bot.kb check [DIR]``   list every problem as ``path:line: message``; exit 1 if any.
``python -m bot.kb match [--kb DIR]``  one query per stdin line -> one JSON object per line
(a stable contract: ``query``, ``decision``, ``id``, ``score``, ``candidates``).
``python -m bot.kb nlu [--kb DIR] [--out FILE]``  write Rasa NLU examples generated from the KB.
``python -m bot.kb eval FILE [--kb DIR] [--json]``  how well labelled questions are answered
(``query, expected_id`` CSV, ``none`` = not covered); see bot/kb/evaluate.py.
``python -m bot.kb unanswered [--kb DIR] [--events FILE] [--json] [--limit N]``  what customers
asked that the bot could not answer, grouped by meaning (from the Redis event stream, or a
JSON-lines file of tracker events); see bot/kb/unanswered.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from redis.exceptions import RedisError

from bot.kb.evaluate import EvalFileError, evaluate, format_report, read_cases
from bot.kb.loader import kb_files, load_dir, load_or_report
from bot.kb.matcher import Matcher
from bot.kb.nlu import nlu_yaml
from bot.settings import SettingsError, load_settings


def _check(directory: Path) -> int:
    kb, problems = load_dir(directory)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {directory}", file=sys.stderr)
        return 1
    failed = run_entry_tests(kb, load_settings().match)
    for failure in failed:
        print(failure)
    if failed:
        print(f"{len(failed)} test phrasing(s) not answered by their entry in {directory}", file=sys.stderr)
        return 1
    tests = sum(len(entry.tests) for entry in kb.entries)
    passed = f"; {tests} test phrasing(s) answered by their entry" if tests else ""
    guides = sum(entry.guide is not None for entry in kb.entries)
    counted = f"{len(kb) - guides} entries and {guides} guides" if guides else f"{len(kb)} entries"
    print(f"OK: {counted} in {len(kb_files(directory))} file(s) under {directory}{passed}")
    return 0


def run_entry_tests(kb, settings) -> list[str]:
    """Each entry's ``tests:`` wordings must be answered directly by that entry, as
    ``path:line: entry 'id': test "..." got ...`` when not (loads the encoder only if any)."""
    cases = [(entry, text) for entry in kb.entries for text in entry.tests]
    if not cases:
        return []
    matcher = Matcher(kb, settings)
    failed = []
    for (entry, text), match in zip(cases, matcher.match_many([text for _, text in cases]), strict=True):
        if match.decision != "answer" or match.id != entry.id:
            got = f"{match.decision} {match.id}" if match.id else match.decision
            failed.append(f"{entry.source}:{entry.line}: entry '{entry.id}': test \"{text}\" got {got} ({match.score})")
    return failed


def _match(directory: Path) -> int:
    settings = load_settings()
    kb = load_or_report(directory, sys.stderr)
    if kb is None:
        return 2
    matcher = Matcher(kb, settings.match)
    for line in sys.stdin:
        query = line.rstrip("\r\n")
        sys.stdout.write(json.dumps(matcher.match(query).as_json(), ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return 0


def _eval(directory: Path, cases_file: Path, as_json: bool) -> int:
    kb = load_or_report(directory, sys.stderr)
    if kb is None:
        return 2
    try:
        cases = read_cases(cases_file, (entry.id for entry in kb.entries))
    except EvalFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = evaluate(Matcher(kb, load_settings().match), cases)
    print(json.dumps(report.as_json(), ensure_ascii=False, indent=2) if as_json else format_report(report))
    return 0


def _nlu(directory: Path, out: Path | None) -> int:
    kb, problems = load_dir(directory)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    text = nlu_yaml(kb)
    if out is None:
        sys.stdout.write(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return 0


async def _stream_events() -> list[dict]:
    """The events in the broker's Redis stream, through the same reader as the editors' page."""
    from bot.kb.unanswered import event_of
    from handoff.keys import EVENT_STREAM
    from handoff.privacy import stream_entries

    client = load_settings().redis.client()
    try:
        return [
            event
            for _, fields in [e async for e in stream_entries(client, EVENT_STREAM)]
            if (event := event_of(fields))
        ]
    finally:
        await client.close()


def _unanswered(directory: Path, events_file: Path | None, as_json: bool, limit: int) -> int:
    from bot.kb import unanswered

    kb, _ = load_dir(directory)  # the closest entries' questions; a broken file does not matter here
    if events_file is not None:
        try:
            lines = events_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            print(f"error: cannot read {events_file}: {exc}", file=sys.stderr)
            return 2
        events = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                events.append(json.loads(line))
            except ValueError:
                print(f"{events_file}:{number}: not a JSON event; skipped", file=sys.stderr)
    else:
        try:
            events = asyncio.run(_stream_events())
        except (OSError, RedisError) as exc:
            print(f"error: cannot read the event stream from Redis: {exc}", file=sys.stderr)
            return 2
    groups = unanswered.report(events, kb)
    if as_json:
        print(json.dumps(groups[:limit], ensure_ascii=False, indent=2))
    else:
        print(unanswered.format_report(groups, limit))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.kb", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    # One way to name the folder for every command: --kb DIR (check also takes it bare, as before).
    folder = argparse.ArgumentParser(add_help=False)
    folder.add_argument("--kb", type=Path, help="folder of .yml files (default: KB_DIR or data/faq)")
    check = commands.add_parser("check", parents=[folder], help="validate a knowledge-base folder")
    check.add_argument("dir", nargs="?", type=Path, help="the same as --kb DIR")
    commands.add_parser("match", parents=[folder], help="match stdin queries, one JSON line each")
    evaluation = commands.add_parser(
        "eval", parents=[folder], help="accuracy, coverage and confusions on labelled questions"
    )
    evaluation.add_argument("file", type=Path, help="CSV of query, expected_id (none = not covered)")
    evaluation.add_argument("--json", action="store_true", help="print the figures as JSON")
    nlu = commands.add_parser("nlu", parents=[folder], help="write NLU training examples generated from the KB")
    nlu.add_argument("--out", type=Path)
    missed = commands.add_parser(
        "unanswered", parents=[folder], help="what customers asked that the bot could not answer, grouped"
    )
    missed.add_argument("--events", type=Path, help="JSON lines of tracker events (default: the Redis event stream)")
    missed.add_argument("--json", action="store_true", help="print the groups as JSON")
    missed.add_argument("--limit", type=int, default=30, help="largest groups to show (default 30)")
    args = parser.parse_args(argv)
    try:
        default_dir = load_settings().kb_dir
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        if args.dir and args.kb and args.dir.resolve() != args.kb.resolve():
            print(f"check: two folders given ({args.dir} and --kb {args.kb}); name one", file=sys.stderr)
            return 2
        return _check(args.kb or args.dir or default_dir)
    if args.command == "match":
        return _match(args.kb or default_dir)
    if args.command == "eval":
        return _eval(args.kb or default_dir, args.file, args.json)
    if args.command == "unanswered":
        return _unanswered(args.kb or default_dir, args.events, args.json, args.limit)
    return _nlu(args.kb or default_dir, args.out)


if __name__ == "__main__":
    sys.exit(main())
