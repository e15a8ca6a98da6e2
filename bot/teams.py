"""Teams of agents and what each one handles (``data/console/teams.yml``).

The team a handed-off conversation belongs to is decided once, when the bot hands it off,
from what the conversation was about: the knowledge-base file of its entry or guide (the
*topic*: ``billing.yml`` is topic ``billing``), else the handoff's reason, else the
default team. It is written on the card and in the tracker, so the team lead's figures
count a conversation under the team it went to, even after the file is changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class Team:
    name: str
    label: str
    topics: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Teams:
    default: str = "general"
    teams: dict[str, Team] = field(default_factory=dict)

    def team_for(self, topic: str | None, reason: str | None = None) -> str:
        """The team for a conversation about ``topic`` handed off for ``reason``."""
        if topic:
            for team in self.teams.values():
                if topic in team.topics:
                    return team.name
        if reason:
            for team in self.teams.values():
                if reason in team.reasons:
                    return team.name
        return self.default

    def label(self, name: str) -> str:
        team = self.teams.get(name)
        return team.label if team else name


def topic_of(source: str | None) -> str | None:
    """The topic of an entry: the name of the file it is written in, without ``.yml``."""
    if not source:
        return None
    return Path(source).name.removesuffix(".yaml").removesuffix(".yml") or None


def parse_teams(data: Any) -> Teams:
    """Check and read the file's content; a mistake is reported with where it is."""
    if data is None:
        return Teams(default="general", teams={"general": Team("general", "General")})
    if not isinstance(data, dict) or not isinstance(data.get("teams"), dict) or not data["teams"]:
        raise ValueError("teams file: needs a 'teams:' mapping with at least one team")
    teams: dict[str, Team] = {}
    for name, spec in data["teams"].items():
        name = str(name)
        if not name or not set(name) <= _NAME_CHARS:
            raise ValueError(f"teams file: team name {name!r} may use only a-z, 0-9, '-' and '_'")
        spec = spec or {}
        if not isinstance(spec, dict):
            raise ValueError(f"teams file: team {name!r} must be a mapping (label, topics, reasons)")
        lists = {}
        for key in ("topics", "reasons"):
            value = spec.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"teams file: {name}.{key} must be a list of names")
            lists[key] = tuple(value)
        teams[name] = Team(name=name, label=str(spec.get("label") or name), **lists)
    default = str(data.get("default") or next(iter(teams)))
    if default not in teams:
        raise ValueError(f"teams file: default team {default!r} is not one of {sorted(teams)}")
    return Teams(default=default, teams=teams)


def load_teams(path: str | Path) -> Teams:
    path = Path(path)
    if not path.exists():
        return parse_teams(None)
    return parse_teams(yaml.safe_load(path.read_text(encoding="utf-8")))
