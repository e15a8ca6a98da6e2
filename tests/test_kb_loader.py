"""The validator as an editor meets it: every problem at once, as path:line: message."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.kb import load_dir
from bot.kb.loader import parse
from tests.conftest import DEMO_KB, ROOT

GOOD = """\
entries:
  - id: billing-pay-bill
    question: How do I pay my bill?
    alternatives:
      - ways to pay my invoice
      - can I pay online
    answer: Pay in the app under Billing.
    tags: [billing]
    buttons:
      - title: Direct debit
        entry: billing-direct-debit
    links:
      - title: Pay online
        url: https://brightline.example/pay
  - id: billing-direct-debit
    question: How do I set up direct debit?
    alternatives: [automatic payments]
    answer: In the app under Billing > Payment methods.
    tags: [billing]
    handoff: false
"""


def messages(problems) -> list[str]:
    return [str(p) for p in problems]


def test_a_clean_file_loads_with_all_fields(write_kb) -> None:
    kb, problems = load_dir(write_kb({"billing.yml": GOOD}))
    assert problems == []
    entry = kb.get("billing-pay-bill")
    assert entry.question == {"en": "How do I pay my bill?"}
    assert entry.alternatives == {"en": ("ways to pay my invoice", "can I pay online")}
    assert entry.buttons[0].entry == "billing-direct-debit"
    assert entry.links[0].url == "https://brightline.example/pay"
    assert entry.line == 2


def test_yaml_syntax_error_names_file_and_line(write_kb) -> None:
    folder = write_kb({"broken.yml": "entries:\n  - id: a\n    question: [unclosed\n    answer: x\n"})
    _, problems = load_dir(folder)
    assert len(problems) == 1
    assert str(problems[0]).startswith(f"{folder / 'broken.yml'}:")
    assert "YAML syntax error" in problems[0].message


def test_every_problem_is_reported_not_just_the_first(write_kb) -> None:
    text = """\
entries:
  - id: one
    question: First?
    alternatives: [a first one]
    tags: [x]
  - id: two
    question: Second?
    alternatives:
      - fine
      - ""
    answer: yes
    tags: [x]
    colour: blue
"""
    folder = write_kb({"many.yml": text})
    _, problems = load_dir(folder)
    path = folder / "many.yml"
    assert messages(problems) == [
        f"{path}:2: entry 'one': missing answer",
        f"{path}:10: empty alternative in alternatives",
        f"{path}:11: answer must be text (if you meant the word, put it in quotes)",
        f"{path}:13: unknown key 'colour' in an entry (allowed: id, question, alternatives, answer, tags, buttons, "
        "links, handoff, tests)",
    ]


def test_duplicate_id_across_files_names_both_places(write_kb) -> None:
    folder = write_kb({"a.yml": GOOD, "b.yml": GOOD.replace("pay my bill", "pay a bill").split("  - id: billing-d")[0]})
    _, problems = load_dir(folder)
    found = messages(problems)
    assert f"{folder / 'b.yml'}:2: duplicate id 'billing-pay-bill' (also at {folder / 'a.yml'}:2)" in found
    assert f"{folder / 'a.yml'}:2: duplicate id 'billing-pay-bill' (also at {folder / 'b.yml'}:2)" in found


def test_same_phrasing_in_two_entries_is_reported(write_kb) -> None:
    text = GOOD.replace("[automatic payments]", "[Ways to pay my invoice!]")
    _, problems = load_dir(write_kb({"a.yml": text}))
    assert any("also used by entry 'billing-pay-bill'" in p.message for p in problems)


def test_button_to_unknown_entry_and_bad_link_are_reported(write_kb) -> None:
    text = GOOD.replace("entry: billing-direct-debit", "entry: no-such-entry").replace(
        "https://brightline.example/pay", "brightline.example/pay"
    )
    _, problems = load_dir(write_kb({"a.yml": text}))
    found = " | ".join(messages(problems))
    assert "button points to unknown entry 'no-such-entry'" in found
    assert "must start with http:// or https://" in found


def test_translated_entry_needs_every_part_in_every_language(write_kb) -> None:
    text = """\
language: en
entries:
  - id: intl-pay
    question:
      en: How do I pay my bill?
      ru: Как оплатить счёт?
      ka: როგორ გადავიხადო ანგარიში?
    alternatives:
      en: [paying my bill]
      ru: [оплата счёта]
      ka: [ანგარიშის გადახდა]
    answer:
      en: In the app.
      ru: В приложении.
    tags: [billing]
"""
    _kb, problems = load_dir(write_kb({"intl.yml": text}))
    assert messages(problems) == [f"{kb_path(problems)}:3: entry 'intl-pay': missing answer in language 'ka'"]


def kb_path(problems) -> str:
    return problems[0].path


def test_empty_and_non_mapping_files_are_explained() -> None:
    assert [p.message for p in parse("", "x.yml").problems] == [
        "file is empty; expected a mapping with an 'entries:' list"
    ]
    assert "must be a mapping" in parse("- just\n- a list\n", "x.yml").problems[0].message
    assert "missing 'entries:'" in parse("language: en\n", "x.yml").problems[0].message


def test_demo_knowledge_base_is_clean_and_big_enough() -> None:
    kb, problems = load_dir(DEMO_KB)
    assert problems == []
    assert len(kb) >= 80
    assert all(len(alts) >= 3 for entry in kb.entries for alts in entry.alternatives.values())
    topics = {entry.tags[0] for entry in kb.entries}
    assert {"billing", "account", "plans", "delivery", "returns", "outages", "devices"} <= topics


def _check(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot.kb", "check", str(folder)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_every_kb_command_names_its_folder_with_kb(tmp_path: Path) -> None:
    broken = tmp_path / "faq"
    shutil.copytree(DEMO_KB, broken)
    (broken / "extra.yml").write_text("entries:\n  - id: x\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "bot.kb", "check", "--kb", str(broken)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 1 and f"{broken / 'extra.yml'}:2:" in result.stdout, result.stdout + result.stderr
    for command in (["match"], ["eval", "cases.csv"], ["nlu"]):
        usage = subprocess.run(
            [sys.executable, "-m", "bot.kb", *command, "--help"], cwd=ROOT, capture_output=True, text=True
        )
        assert "--kb KB" in usage.stdout, command
    both = subprocess.run(
        [sys.executable, "-m", "bot.kb", "check", str(DEMO_KB), "--kb", str(broken)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert both.returncode == 2 and "name one" in both.stderr


def test_check_command_exits_0_on_the_demo_kb() -> None:
    result = _check(DEMO_KB)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK:")


def test_check_command_lists_duplicate_id_and_missing_answer(tmp_path: Path) -> None:
    copy = tmp_path / "faq"
    shutil.copytree(DEMO_KB, copy)
    billing = copy / "billing.yml"
    lines = billing.read_text(encoding="utf-8").splitlines(keepends=True)
    answer_at = next(i for i, line in enumerate(lines) if line.strip().startswith("answer:"))
    end = answer_at + 1
    while end < len(lines) and (lines[end].startswith("      ") or not lines[end].strip()):
        end += 1
    del lines[answer_at:end]  # the first entry loses its answer
    first_id_line = next(i for i, line in enumerate(lines) if line.strip().startswith("- id:")) + 1
    billing.write_text("".join(lines), encoding="utf-8")
    plans = copy / "plans.yml"
    plan_lines = plans.read_text(encoding="utf-8").splitlines(keepends=True)
    dup_at = next(i for i, line in enumerate(plan_lines) if line.strip().startswith("- id:"))
    plan_lines[dup_at] = plan_lines[dup_at].split("- id:")[0] + "- id: billing-pay-bill\n"
    plans.write_text("".join(plan_lines), encoding="utf-8")

    result = _check(copy)
    assert result.returncode == 1
    out = result.stdout
    assert f"{billing}:{first_id_line}: entry '" in out and "missing answer" in out
    assert f"{plans}:{dup_at + 1}: duplicate id 'billing-pay-bill'" in out


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("entries:\n  - id: a\n    question: x\n  answer: y\n    tags: [a]\n", 4, "does not line up"),
        ("entries:\n  - id: a\n    question: x\n     answer: y\n", 4, "indented more than line 3"),
        ("entries:\n  - id: a\n    question: Note: the fee\n", 3, "put the whole text in double quotes"),
        ("entries:\n\t- id: a\n", 2, "indent with spaces only"),
        ('entries:\n  - id: a\n    question: "unclosed\n    answer: y\n', 3, "quote opened on line 3 is never closed"),
        ("entries:\n  - id: a\n    question: *bold* offer\n", 3, "'*' or '&' must be in double quotes"),
        ("entries:\n  - id: a\n    question: @home wifi\n", 3, "'@', '`' or '%' must be in double quotes"),
        ("entries:\n  - id: a\n    tags: [a, b\n    answer: x\n", 3, "'[' on line 3 is never closed with ']'"),
    ],
)
def test_common_yaml_slips_are_explained_in_plain_words_at_their_line(write_kb, text, line, says) -> None:
    folder = write_kb({"slip.yml": text})
    _, problems = load_dir(folder)
    assert len(problems) == 1
    assert problems[0].line == line, problems[0]
    assert says in problems[0].message, problems[0]
    assert "<block end>" not in problems[0].message
