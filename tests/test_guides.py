"""Troubleshooting guides: the format editors write (the example in docs/knowledge-base.md
must load as it is), what ``kb check`` catches, and the engine's every path, without a
server. The conversation over the real stack is in tests/e2e/test_guides.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.kb import guides
from bot.kb.loader import load, load_dir
from bot.settings import ROOT

DOCS = ROOT / "docs" / "knowledge-base.md"


def docs_example() -> str:
    """The complete guide the editors' guide shows, exactly as printed there."""
    section = DOCS.read_text(encoding="utf-8").split("### A complete guide", 1)[1]
    return section.split("```yaml", 1)[1].split("```", 1)[0]


SECOND = """
guides:
  - id: devices-hub-power
    question: {en: My hub has no lights at all, ru: На роутере не горит ни один индикатор}
    alternatives:
      en: [hub is dead, no power on the router]
      ru: [роутер не включается]
    tags: [devices]
    intro: {en: Let's check the power., ru: Проверим питание.}
    steps:
      - id: socket
        ask: {en: Is the plug switched on at the wall?, ru: Розетка включена?}
        answers:
          - title: {en: "Yes", ru: "Да"}
            means: yes
            then: handoff
          - title: {en: "No", ru: "Нет"}
            means: no
            then: done
    resolved: {en: That was it!, ru: Вот и всё!}
"""


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    (tmp_path / "guide.yml").write_text(docs_example(), encoding="utf-8")
    (tmp_path / "power.yml").write_text(SECOND, encoding="utf-8")
    return tmp_path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "broken.yml").write_text(text, encoding="utf-8")
    _, problems = load_dir(tmp_path)
    return [str(p) for p in problems]


# --- the format ---------------------------------------------------------------------------


def test_the_documented_example_loads_as_a_guide_found_like_an_entry(kb_dir: Path) -> None:
    kb = load(kb_dir)
    entry = kb.get("devices-router-lights")
    assert entry is not None and entry.guide is not None
    assert [step.id for step in entry.guide.steps] == ["colour", "restart"]
    first = entry.guide.first
    # A bare `means: yes` is the word yes, not YAML's boolean.
    assert [option.means for option in first.options] == ["yes", "no", "unsure"]
    assert first.options[1].says["ru"] == ("красный",)
    # The matcher reads the guide's words like an answer, in each language.
    assert "Unplug the hub" in entry.answer["en"] and "Отключите" in entry.answer["ru"]


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_check_names_a_step_nobody_reaches_and_an_answer_leading_nowhere(tmp_path: Path) -> None:
    text = edit(
        docs_example(),
        "    resolved:                   # said",
        "      - id: orphan\n"
        "        ask: {en: Lonely?, ru: Одиноко?}\n"
        "        answers:\n"
        "          - title: {en: Sure, ru: Да}\n"
        "            then: nowhere\n"
        "    resolved:                   # said",
    )
    found = problems_of(tmp_path, text)
    line = text.splitlines().index("      - id: orphan") + 1
    assert f"broken.yml:{line}: guide 'devices-router-lights': step 'orphan' is never reached from the first step" in [
        re.sub(r"^.*/", "", p) for p in found
    ]
    assert any("step 'orphan': answer leads to unknown step 'nowhere'" in p for p in found)


def test_check_finds_a_loop_without_an_exit(tmp_path: Path) -> None:
    text = docs_example()
    text = edit(text, "then: done          #", "then: restart #")
    text = edit(text, "then: handoff       #", "then: colour #")
    text = edit(text, "            then: done\n", "            then: colour\n")
    text = edit(text, "            then: handoff\n", "            then: restart\n")
    found = problems_of(tmp_path, text)
    assert sum("loops without an exit" in p for p in found) == 2, found


def test_check_names_each_missing_translation(tmp_path: Path) -> None:
    text = edit(docs_example(), "          ru: Он горит ровным белым?\n", "")
    found = problems_of(tmp_path, text)
    assert any("step 'colour' ask has no translation in ru" in p for p in found), found


def test_a_button_title_too_long_for_whatsapp_is_reported(tmp_path: Path) -> None:
    text = edit(docs_example(), '"I can\'t see it"', '"I can\'t see any light at all"')
    found = problems_of(tmp_path, text)
    assert any("WhatsApp shows at most 20" in p for p in found), found


def test_a_jump_to_a_guide_that_does_not_exist_is_reported(kb_dir: Path) -> None:
    path = kb_dir / "guide.yml"
    path.write_text(edit(path.read_text(), "then: handoff       #", "then: guide:devices-nope #"))
    _, problems = load_dir(kb_dir)
    assert any("leads to unknown guide 'devices-nope'" in str(p) for p in problems), problems


def test_a_broken_guide_does_not_stop_the_other_guides(kb_dir: Path) -> None:
    path = kb_dir / "guide.yml"
    path.write_text(edit(path.read_text(), "      - id: restart\n", "      - id: colour\n"))
    kb, problems = load_dir(kb_dir)
    assert any("step id 'colour' repeats" in str(p) for p in problems)
    assert kb.get("devices-hub-power") is not None and kb.get("devices-router-lights") is None


# --- the engine ---------------------------------------------------------------------------


def test_a_guide_starts_with_its_intro_and_first_check_with_answer_buttons(kb_dir: Path) -> None:
    kb = load(kb_dir)
    progress = guides.start(kb, kb.get("devices-router-lights"), "ru")
    intro, step = progress.replies
    assert intro.text.startswith("Давайте разберёмся")
    assert "Он горит ровным белым?" in step.text and "Посмотрите на индикатор" in step.text
    assert [b["title"] for b in step.buttons] == ["Да, белый", "Нет, красный", "Не вижу"]
    assert step.buttons[1]["payload"] == guides.answer_payload("devices-router-lights", "colour", 1)
    assert {k: v for k, v in progress.state.items() if k != "at"} == {
        "id": "devices-router-lights",
        "step": "colour",
        "trail": [],
    }


def test_a_guide_left_idle_for_half_an_hour_is_no_longer_open(kb_dir: Path) -> None:
    from actions.guide import is_open

    kb = load(kb_dir)
    state = guides.start(kb, kb.get("devices-router-lights"), "en").state
    assert is_open(state) and is_open(state, now=state["at"] + guides.IDLE_SECONDS - 1)
    assert not is_open(state, now=state["at"] + guides.IDLE_SECONDS + 1)
    assert not is_open({**state, "ended": "handoff"})


def test_followed_to_resolution(kb_dir: Path) -> None:
    kb = load(kb_dir)
    state = guides.start(kb, kb.get("devices-router-lights"), "en").state
    progress = guides.choose(kb, state, 1, "en")
    assert "Is the light white now?" in progress.replies[-1].text
    progress = guides.choose(kb, progress.state, 0, "en")
    assert progress.done and progress.state is None
    assert progress.replies[-1].text == "Great, your hub is back to normal!"


def test_exhausted_hands_off_with_every_step_and_answer_for_the_card(kb_dir: Path) -> None:
    kb = load(kb_dir)
    state = guides.start(kb, kb.get("devices-router-lights"), "ru").state
    state = guides.choose(kb, state, 1, "ru", typed="нет, красный горит").state
    progress = guides.choose(kb, state, 1, "ru")
    assert progress.handoff and not progress.done
    assert progress.replies[0].text.startswith("Значит, линию нужно проверить")  # the answer's own reply
    card = guides.card(kb, progress.state)
    assert card["title"] == "What do the lights on my router mean?" and card["ended"] == "handoff"
    assert [(s["asked"], s["answer"], s["typed"]) for s in card["steps"]] == [
        ("Is it solid white?", "No, it's red", "нет, красный горит"),
        ("Is the light white now?", "Still red", None),
    ]


def test_an_answer_can_continue_in_another_guide_and_the_trail_goes_along(kb_dir: Path) -> None:
    path = kb_dir / "guide.yml"
    path.write_text(edit(path.read_text(), "then: handoff       #", "then: guide:devices-hub-power #"))
    kb = load(kb_dir)
    state = guides.start(kb, kb.get("devices-router-lights"), "en").state
    progress = guides.choose(kb, state, 2, "en")
    assert progress.replies[0].text == "Let's check the power."
    assert progress.state["id"] == "devices-hub-power" and len(progress.state["trail"]) == 1
    progress = guides.choose(kb, progress.state, 0, "en")
    assert progress.handoff and [s["guide"] for s in guides.card(kb, progress.state)["steps"]] == [
        "devices-router-lights",
        "devices-hub-power",
    ]


def test_asking_the_guides_question_again_continues_where_the_customer_left_off(kb_dir: Path) -> None:
    kb = load(kb_dir)
    entry = kb.get("devices-router-lights")
    state = guides.choose(kb, guides.start(kb, entry, "en").state, 1, "en").state
    again = guides.start(kb, entry, "en", state)
    assert again.state == state and "Is the light white now?" in again.replies[-1].text
    assert guides.resume_button(kb, state, "en")["payload"] == guides.RESUME_PAYLOAD


def test_a_loop_ends_with_a_person_not_forever(kb_dir: Path) -> None:
    path = kb_dir / "guide.yml"
    path.write_text(edit(path.read_text(), "            then: handoff\n", "            then: colour\n"))
    kb = load(kb_dir)
    progress = guides.start(kb, kb.get("devices-router-lights"), "en")
    for _ in range(guides.MAX_TRAIL + 1):
        if progress.handoff:
            break
        progress = guides.choose(kb, progress.state, 1, "en")
    assert progress.handoff and len(progress.state["trail"]) == guides.MAX_TRAIL + 1


def test_a_step_removed_by_an_editor_ends_the_guide_politely(kb_dir: Path) -> None:
    kb = load(kb_dir)
    stale = {"id": "devices-router-lights", "step": "gone", "trail": []}
    assert guides.current(kb, stale) is None
    assert guides.choose(kb, stale, 0, "en").state is None
    assert guides.resume_button(kb, stale, "en") is None


# --- typed answers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "option"),
    [
        ("Yes", 0),
        ("yep, it's solid white", 0),
        ("да", 0),
        ("jā", 0),
        ("opo", 0),
        ("No, it's red", 1),  # the title, typed
        ("красный", 1),  # one of the answer's `says`
        ("nope", 1),
        ("нет", 1),
        ("ne", 1),
        ("არა", 1),
        ("hindi", 1),
        ("i can't see it", 2),
        ("не знаю", 2),
    ],
)
def test_typed_answers_pick_the_option_in_any_language(kb_dir: Path, text: str, option: int) -> None:
    kb = load(kb_dir)
    state = guides.start(kb, kb.get("devices-router-lights"), "en").state
    assert guides.read(kb, state, text) == guides.Reading(option=option), text


@pytest.mark.parametrize(
    "text", ["still nothing, it's the same", "всё равно не работает", "i dalje ništa", "hindi pa rin gumagana"]
)
def test_still_nothing_reads_as_no(kb_dir: Path, text: str) -> None:
    kb = load(kb_dir)
    state = guides.choose(kb, guides.start(kb, kb.get("devices-router-lights"), "en").state, 1, "en").state
    reading = guides.read(kb, state, text)
    assert reading is not None and reading.option == 1, (text, reading)


@pytest.mark.parametrize("text", ["none of this helps", "ничего из этого не помогает"])
def test_that_did_not_help_gives_up_on_the_guide(kb_dir: Path, text: str) -> None:
    kb = load(kb_dir)
    state = guides.start(kb, kb.get("devices-router-lights"), "en").state
    reading = guides.read(kb, state, text)
    assert reading is not None and reading.not_helped, (text, reading)


@pytest.mark.parametrize(
    "text", ["how do I pay my bill", "what time does your shop open on Sunday", "как вернуть товар", "/request_human"]
)
def test_a_new_question_is_not_read_as_an_answer(text: str) -> None:
    kb = load(ROOT / "data" / "faq")
    state = guides.start(kb, kb.get("outages-no-internet"), "en").state
    assert guides.read(kb, state, text) is None, text
