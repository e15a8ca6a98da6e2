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
    assert "still serving the last good one" in caplog.text


def test_first_load_with_problems_serves_the_valid_entries(write_kb) -> None:
    folder = write_kb({"billing.yml": GOOD, "bad.yml": "entries: [oops"})
    store = KnowledgeBaseStore(folder, MatchSettings(), check_every=0)
    assert len(store.kb) == 2
    assert store.problems and store.problems[0].path.endswith("bad.yml")
