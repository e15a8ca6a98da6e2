"""An editor's approval written into the YAML files (``bot.kb.edit``): comments, order and
layout kept, the whole knowledge base checked first, nothing written when it would break."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.kb.edit import EditError, add_entry, add_phrasing
from bot.kb.loader import load, load_dir
from bot.settings import ROOT


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    target = tmp_path / "faq"
    shutil.copytree(ROOT / "data" / "faq", target)
    return target


def test_a_phrasing_is_added_with_every_comment_and_line_kept(kb_dir: Path) -> None:
    path = kb_dir / "billing.yml"
    before = path.read_text(encoding="utf-8")
    written = add_phrasing(kb_dir, load(kb_dir), "billing-pay-bill", "where do I settle what I owe you", "en")
    after = path.read_text(encoding="utf-8")
    assert written == path
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert [line.strip() for line in added] == ["- where do I settle what I owe you"]
    assert len(after.splitlines()) == len(before.splitlines()) + 1
    assert all(line in after for line in before.splitlines() if line.lstrip().startswith("#"))
    entry = load(kb_dir).get("billing-pay-bill")
    assert "where do I settle what I owe you" in entry.alternatives["en"]


def test_a_phrasing_in_another_language_goes_under_that_language(kb_dir: Path) -> None:
    add_phrasing(kb_dir, load(kb_dir), "billing-pay-bill", "где оплатить мой долг за связь", "ru")
    assert "где оплатить мой долг за связь" in load(kb_dir).get("billing-pay-bill").alternatives["ru"]


def test_a_phrasing_another_entry_already_has_is_refused_and_nothing_is_written(kb_dir: Path) -> None:
    kb = load(kb_dir)
    other = kb.get("billing-direct-debit").alternatives["en"][0]
    path = kb_dir / "billing.yml"
    before = path.read_text(encoding="utf-8")
    with pytest.raises(EditError) as refused:
        add_phrasing(kb_dir, kb, "billing-pay-bill", other, "en")
    assert any("also used by entry" in str(p) for p in refused.value.problems)
    assert all(str(p).startswith(str(path)) for p in refused.value.problems)
    assert path.read_text(encoding="utf-8") == before


def test_unknown_entry_and_untranslated_language_are_refused(kb_dir: Path) -> None:
    kb = load(kb_dir)
    with pytest.raises(EditError, match="no entry"):
        add_phrasing(kb_dir, kb, "billing-nope", "text", "en")
    with pytest.raises(EditError, match="no question in 'de'"):
        add_phrasing(kb_dir, kb, "billing-pay-bill", "wie bezahle ich", "de")


def test_a_new_entry_goes_next_to_its_closest_topic_and_answers(kb_dir: Path) -> None:
    from bot.kb.matcher import Matcher
    from bot.settings import load_settings

    kb = load(kb_dir)
    path = add_entry(
        kb_dir,
        kb,
        "devices-projector-rental",
        "Do you rent out projectors?",
        "No, we don't rent out projectors: we sell broadband, mobile plans and devices.",
        "en",
        ["devices"],
        near="devices-trade-in",
    )
    assert path == kb_dir / "devices.yml"
    assert path.read_text(encoding="utf-8").startswith("# ")  # the file's opening comment is still there
    kb, problems = load_dir(kb_dir)
    assert problems == []
    entry = kb.get("devices-projector-rental")
    assert entry.tags == ("devices",) and entry.answer["en"].startswith("No, we don't rent out projectors")
    match = Matcher(kb, load_settings().match).match("Do you rent out projectors?")
    assert (match.decision, match.id) == ("answer", "devices-projector-rental")


def test_a_new_entry_in_russian_and_one_without_a_neighbour(kb_dir: Path) -> None:
    add_entry(kb_dir, load(kb_dir), "devices-projector-ru", "Сдаёте ли вы проекторы?", "Нет.", "ru", ["devices"])
    assert (kb_dir / "suggested.yml").exists()
    entry = load(kb_dir).get("devices-projector-ru")
    assert entry.question == {"ru": "Сдаёте ли вы проекторы?"} and entry.answer == {"ru": "Нет."}
    with pytest.raises(EditError, match="exists already"):
        add_entry(kb_dir, load(kb_dir), "devices-projector-ru", "x", "y", "en", [])
    with pytest.raises(EditError, match="may hold only"):
        add_entry(kb_dir, load(kb_dir), "bad id", "x", "y", "en", [])
