"""The demo knowledge base tells customers what the configuration does, never the opposite."""

from __future__ import annotations

from bot.business_hours import load_business_hours
from bot.kb import load
from tests.conftest import DEMO_KB, ROOT

HOURS_FILE = ROOT / "data" / "console" / "business_hours.yml"


def test_the_support_hours_answer_gives_the_configured_hours_and_promises_no_people_around_the_clock() -> None:
    hours = load_business_hours(HOURS_FILE)
    assert not hours.always
    answer = load(DEMO_KB).get("intl-support-hours").answer
    for spans in hours.week.values():
        for start, end in spans:
            written = f"{start.hour}:{start:%M}–{end.hour}:{end:%M}"  # as an editor writes it: 8:00–22:00
            assert written in answer["en"], written
            for language, text in answer.items():
                assert f"{start.hour}:{start:%M}" in text and f"{end.hour}:{end:%M}" in text, language
    for entry in load(DEMO_KB).entries:
        for language, text in entry.answer.items():
            assert "24/7" not in text, (entry.id, language)  # people answer only in business hours
