"""When people answer: the schedule editors keep in data/console/business_hours.yml."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.business_hours import BusinessHoursError, load_business_hours
from bot.messages import when
from tests.conftest import ROOT

BERLIN = ZoneInfo("Europe/Berlin")
DEMO = ROOT / "data" / "console" / "business_hours.yml"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def test_demo_schedule_opens_and_closes_in_the_teams_time_zone() -> None:
    hours = load_business_hours(DEMO)
    assert hours.is_open(at("2026-11-23 09:00"))  # a Monday morning
    assert not hours.is_open(at("2026-11-23 22:30"))
    assert not hours.is_open(at("2026-11-29 08:30"))  # Sunday opens at 09:00
    assert not hours.is_open(at("2026-12-25 12:00"))  # closed date
    # The same instant in UTC is judged in Berlin time.
    assert hours.is_open(datetime.fromisoformat("2026-11-23 07:30+00:00"))
    assert hours.describe() == "Mon-Sat 08:00-22:00, Sun 09:00-18:00"


def test_next_opening_is_what_the_customer_is_told() -> None:
    hours = load_business_hours(DEMO)
    late = at("2026-11-23 23:00")
    assert when(hours.next_open(late), late) == "tomorrow at 08:00"
    christmas_eve = at("2026-12-24 23:00")
    assert hours.next_open(christmas_eve) == at("2026-12-27 09:00")  # 25th, 26th closed; 27th is a Sunday
    assert when(hours.next_open(christmas_eve), christmas_eve) == "on Sunday at 09:00"
    assert when(hours.next_open(christmas_eve), christmas_eve, "ru") == "в воскресенье в 09:00"
    early = at("2026-11-23 06:00")
    assert when(hours.next_open(early), early) == "today at 08:00"


def test_always_means_a_24_7_team() -> None:
    hours = load_business_hours("always")
    assert hours.is_open(at("2026-12-25 03:00")) and hours.describe() == "24/7"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("timezone: Mars/Olympus\n", "unknown timezone"),
        ("hours:\n  funday: 08:00-10:00\n", "unknown day"),
        ("hours:\n  mon: 8am-5pm\n", "not a range"),
        ("hours:\n  mon: 18:00-08:00\n", "ends before it starts"),
        ("closed_dates: [christmas]\n", "YYYY-MM-DD"),
    ],
)
def test_a_broken_schedule_names_the_file_and_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "hours.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BusinessHoursError, match=problem) as error:
        load_business_hours(path)
    assert str(path) in str(error.value)
