"""When people answer chats: a weekly schedule in the team's time zone, plus closed dates.

Outside these hours a customer who needs a person is still queued, but told honestly
when someone will be back instead of being promised a wait. Kept in
``data/console/business_hours.yml`` (``BUSINESS_HOURS_FILE``; ``always`` means 24/7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class BusinessHoursError(ValueError):
    """The schedule file is wrong; the message names the file and the problem."""


@dataclass(frozen=True)
class BusinessHours:
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    week: dict[int, list[tuple[time, time]]] = field(default_factory=dict)
    closed_dates: frozenset[date] = frozenset()
    always: bool = False

    def is_open(self, at: datetime) -> bool:
        if self.always:
            return True
        local = at.astimezone(self.timezone)
        if local.date() in self.closed_dates:
            return False
        now = local.time()
        return any(start <= now < end for start, end in self.week.get(local.weekday(), []))

    def next_open(self, at: datetime) -> datetime | None:
        """The next moment people are back, in the team's time zone (``None`` if never)."""
        if self.always:
            return at
        local = at.astimezone(self.timezone)
        for offset in range(0, 15):
            day = local.date() + timedelta(days=offset)
            if day in self.closed_dates:
                continue
            for start, end in sorted(self.week.get(day.weekday(), [])):
                opening = datetime.combine(day, start, self.timezone)
                closing = datetime.combine(day, end, self.timezone)
                if closing > local:
                    return max(opening, local)
        return None

    def describe(self) -> str:
        """The weekly hours in one line, e.g. ``Mon-Sat 08:00-22:00, Sun 09:00-18:00``."""
        if self.always:
            return "24/7"
        parts: list[str] = []
        runs: list[tuple[int, int, str]] = []
        for index in range(7):
            hours = ", ".join(f"{s:%H:%M}-{e:%H:%M}" for s, e in self.week.get(index, []))
            if hours and runs and runs[-1][2] == hours and runs[-1][1] == index - 1:
                runs[-1] = (runs[-1][0], index, hours)
            elif hours:
                runs.append((index, index, hours))
        for first, last, hours in runs:
            days = DAYS[first].title() if first == last else f"{DAYS[first].title()}-{DAYS[last].title()}"
            parts.append(f"{days} {hours}")
        return ", ".join(parts) or "closed"


ALWAYS_OPEN = BusinessHours(always=True)


def load_business_hours(source: str | Path | None) -> BusinessHours:
    if source is None or str(source).strip().lower() in ("", "always", "24/7"):
        return ALWAYS_OPEN
    path = Path(source)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BusinessHoursError(f"{path}: cannot read business hours: {exc}") from None
    if not isinstance(data, dict):
        raise BusinessHoursError(f"{path}: expected a mapping with 'timezone' and 'hours'")
    try:
        zone = ZoneInfo(str(data.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        raise BusinessHoursError(f"{path}: unknown timezone {data.get('timezone')!r}") from None
    hours = data.get("hours") or {}
    if not isinstance(hours, dict):
        raise BusinessHoursError(f"{path}: 'hours' must map days (mon..sun) to ranges like 08:00-20:00")
    week: dict[int, list[tuple[time, time]]] = {}
    for day, value in hours.items():
        if str(day).lower() not in DAYS:
            raise BusinessHoursError(f"{path}: unknown day {day!r} (use mon, tue, wed, thu, fri, sat, sun)")
        ranges = value if isinstance(value, list) else [value]
        for item in ranges:
            if item in (None, "closed"):
                continue
            match = RANGE.match(str(item))
            if not match:
                raise BusinessHoursError(f"{path}: {day}: {item!r} is not a range like 08:00-20:00")
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            if not (0 <= h1 <= 23 and 0 <= h2 <= 24 and m1 < 60 and m2 < 60):
                raise BusinessHoursError(f"{path}: {day}: {item!r} is not a valid time range")
            start, end = time(h1, m1), (time(23, 59, 59) if h2 == 24 else time(h2, m2))
            if end <= start:
                raise BusinessHoursError(f"{path}: {day}: {item!r} ends before it starts")
            week.setdefault(DAYS.index(str(day).lower()), []).append((start, end))
    closed: set[date] = set()
    for item in data.get("closed_dates") or []:
        try:
            closed.add(item if isinstance(item, date) else date.fromisoformat(str(item)))
        except ValueError:
            raise BusinessHoursError(f"{path}: closed date {item!r} is not YYYY-MM-DD") from None
    return BusinessHours(zone, week, frozenset(closed))
