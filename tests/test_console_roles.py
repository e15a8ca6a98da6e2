"""Every console route is either open (login, health), open to any signed-in account
(who am I, log out), or needs a role: a new route cannot slip in unguarded."""

from __future__ import annotations

import pytest

from bot.settings import load_settings
from handoff.agents import AgentError, parse_roles
from handoff.app import PUBLIC_PATHS, create_app, required_role

ANY_ACCOUNT = {"/api/me", "/logout"}


def test_every_route_is_public_for_any_account_or_needs_a_role() -> None:
    app = create_app(load_settings({"RASA_TOKEN": "x"}))
    unguarded = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path in PUBLIC_PATHS or path in ANY_ACCOUNT or path.startswith("/static"):
            continue
        if required_role(path.replace("{id}", "rest:x")) is None:
            unguarded.append((route.method, path))
    assert unguarded == []
    assert required_role("/static/editor.js") == "editor" and required_role("/static/console.js") is None


def test_roles_are_named_and_checked() -> None:
    assert parse_roles("editor, agent") == ("agent", "editor")
    assert parse_roles("") == ("agent",)
    with pytest.raises(AgentError, match="unknown role"):
        parse_roles("agent,admin")
