"""Editors' changes go live without a restart; a broken save never takes the bot down."""

from __future__ import annotations

import os
import time

from bot.kb.matcher import ANSWER, MatchSettings
from bot.kb.store import KnowledgeBaseStore
from tests.test_kb_loader import GOOD


def _touch_later(path) -> None:
    later = time.time() + 5
    os.utime(path, (later, later))


def test_edit_is_live_and_broken_save_keeps_last_good(write_kb, caplog) -> None:
    folder = write_kb({"billing.yml": GOOD})
    store = KnowledgeBaseStore(folder, MatchSettings(), check_every=0)
    first = store.matcher()
    assert first.match("How do I pay my bill?").id == "billing-pay-bill"

    edited = GOOD.replace("- can I pay online", "- can I pay online\n      - settle my account balance")
    (folder / "billing.yml").write_text(edited, encoding="utf-8")
    _touch_later(folder / "billing.yml")
    assert store.matcher() is first  # the rebuild runs in the background; the old KB answers meanwhile
    result = store.wait(timeout=30).match("settle my account balance")
    assert (result.decision, result.id) == (ANSWER, "billing-pay-bill")

    broken = edited.replace("    answer: Pay in the app under Billing.\n", "")
    (folder / "billing.yml").write_text(broken, encoding="utf-8")
    os.utime(folder / "billing.yml", (time.time() + 10, time.time() + 10))
    result = store.wait(timeout=30).match("settle my account balance")
    assert (result.decision, result.id) == (ANSWER, "billing-pay-bill")
    assert [p.message for p in store.problems] == ["entry 'billing-pay-bill': missing answer"]
    assert f"{folder / 'billing.yml'}:2: entry 'billing-pay-bill': missing answer" in caplog.text
    assert f"{folder / 'billing.yml'} has problems; still serving its last good version" in caplog.text


def test_first_load_with_problems_serves_the_valid_entries(write_kb) -> None:
    folder = write_kb({"billing.yml": GOOD, "bad.yml": "entries: [oops"})
    store = KnowledgeBaseStore(folder, MatchSettings(), check_every=0)
    assert len(store.kb) == 2
    assert store.problems and store.problems[0].path.endswith("bad.yml")


OTHER = """entries:
  - id: roaming-enable
    question: How do I turn on roaming?
    alternatives:
      - switch on roaming abroad
    answer: Dial *100# before you travel.
    tags: [roaming]
"""


def test_a_broken_file_keeps_its_last_good_version_while_another_files_edit_goes_live(write_kb, caplog) -> None:
    folder = write_kb({"billing.yml": GOOD, "roaming.yml": OTHER})
    store = KnowledgeBaseStore(folder, MatchSettings(), check_every=0)
    assert store.matcher().match("switch on roaming abroad").id == "roaming-enable"

    # One editor breaks billing.yml (an indentation slip); another adds a phrasing to roaming.yml.
    (folder / "billing.yml").write_text(GOOD.replace("    answer:", "  answer:", 1), encoding="utf-8")
    (folder / "roaming.yml").write_text(
        OTHER.replace(
            "- switch on roaming abroad", "- switch on roaming abroad\n      - my phone has no data in Spain"
        ),
        encoding="utf-8",
    )
    _touch_later(folder / "billing.yml")
    _touch_later(folder / "roaming.yml")
    matcher = store.wait(timeout=30)
    assert matcher.match("my phone has no data in Spain").id == "roaming-enable"  # the other edit is live
    paid = matcher.match("How do I pay my bill?")
    assert (paid.decision, paid.id) == (ANSWER, "billing-pay-bill")  # the broken file's last good version
    assert store.problems and all(p.path == str(folder / "billing.yml") for p in store.problems)
    assert "billing.yml has problems; still serving its last good version" in caplog.text

    # billing.yml is fixed; roaming.yml now adds an entry with an id billing.yml already uses.
    (folder / "billing.yml").write_text(GOOD.replace("- can I pay online", "- can I pay online\n      - settle up"))
    clash = OTHER.replace("- switch on roaming abroad", "- switch on roaming abroad\n      - roaming in Italy") + (
        "  - id: billing-direct-debit\n    question: Is there a roaming day pass?\n"
        "    alternatives: [roaming day pass]\n    answer: Yes, 3 EUR a day.\n    tags: [roaming]\n"
    )
    (folder / "roaming.yml").write_text(clash, encoding="utf-8")
    os.utime(folder / "billing.yml", (time.time() + 10, time.time() + 10))
    os.utime(folder / "roaming.yml", (time.time() + 10, time.time() + 10))
    matcher = store.wait(timeout=30)
    assert matcher.match("settle up").id == "billing-pay-bill"  # the fix is live
    assert matcher.kb.get("billing-direct-debit").question["en"] == "How do I set up direct debit?"
    assert matcher.match("my phone has no data in Spain").id == "roaming-enable"  # roaming.yml: last good
    assert "roaming in Italy" not in matcher.kb.get("roaming-enable").alternatives["en"]
    duplicate = [str(p) for p in store.problems]
    assert any(
        d.startswith(f"{folder / 'roaming.yml'}:") and "duplicate id 'billing-direct-debit'" in d for d in duplicate
    )
    assert "roaming.yml has problems; still serving its last good version" in caplog.text
