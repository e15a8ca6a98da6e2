"""Who a chat is offered to and who may take it (handoff/routing.py), and the addresses a
customer leaves for a follow-up (bot/contact.py)."""

from __future__ import annotations

import pytest

from bot.contact import contact_in, looks_like_contact
from bot.teams import Team, Teams
from handoff.agents import Agent
from handoff.queue import WAITING, Card, Chat
from handoff.routing import may_take, offer_is_live, pick_agent

TEAMS = Teams("general", {n: Team(n, n.title()) for n in ("billing", "technical", "general")})


def chat(team: str = "billing", language: str = "en", **extra) -> Chat:
    card = Card("rest:c", "asked_for_human", language=language, team=team)
    return Chat("rest:c", WAITING, card, None, 0.0, 0.0, team=team, **extra)


def agent(name: str, teams=(), languages=(), active=0, capacity=2, status="online", roles=("agent",)) -> Agent:
    return Agent(name, status, capacity, active, tuple(roles), teams=tuple(teams), languages=tuple(languages))


def test_offered_to_the_least_loaded_agent_with_the_skills() -> None:
    agents = [
        agent("tech", teams=["technical"]),
        agent("busy", teams=["billing"], active=1),
        agent("free", teams=["billing"]),
        agent("russian", teams=["billing"], languages=["ru"]),
        agent("away", teams=["billing"], status="away"),
        agent("editor", roles=["editor"]),
    ]
    assert pick_agent(chat(), agents, TEAMS, {}).name == "free"
    assert pick_agent(chat(), agents, TEAMS, {"free": 2}).name == "busy"  # offers held count as load
    assert pick_agent(chat(), agents, TEAMS, {}, skip=["free", "busy"]) is None
    assert pick_agent(chat(language="ru"), agents, TEAMS, {}, skip=["free", "busy"]).name == "russian"
    assert pick_agent(chat(), [agent("anyone")], TEAMS, {}).name == "anyone"  # no skills listed: any chat


def test_without_the_skills_only_when_nobody_online_has_them() -> None:
    tech, biller = agent("tech", teams=["technical"]), agent("biller", teams=["billing"])
    assert not may_take(tech, chat(), [tech, biller], TEAMS)
    assert may_take(biller, chat(), [tech, biller], TEAMS)
    assert may_take(tech, chat(offered_to="tech"), [tech, biller], TEAMS)  # a colleague sent it to them
    away = agent("biller", teams=["billing"], status="away")
    assert may_take(tech, chat(), [tech, away], TEAMS)  # nobody else: the customer is not stranded


def test_an_offer_lapses_after_its_time_or_when_its_agent_cannot_take_it() -> None:
    agents = {"a": agent("a"), "full": agent("full", active=2), "off": agent("off", status="offline")}
    assert offer_is_live(chat(offered_to="a", offered_at=100.0), agents, now=110.0, offer_seconds=30)
    assert not offer_is_live(chat(offered_to="a", offered_at=100.0), agents, now=131.0, offer_seconds=30)
    assert not offer_is_live(chat(offered_to="full", offered_at=100.0), agents, now=101.0, offer_seconds=30)
    assert not offer_is_live(chat(offered_to="off", offered_at=100.0), agents, now=101.0, offer_seconds=30)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("my email is anna.k@example.lv thanks", ("email", "anna.k@example.lv")),
        ("write to me: ivan@mail.ru.", ("email", "ivan@mail.ru")),
        ("call me +371 2012 3456", ("phone", "+37120123456")),
        ("(555) 123-4567", ("phone", "5551234567")),
        ("reach me at 555 123 4567 after 6pm please", ("phone", "5551234567")),
        ("позвоните мне 8 912 345 67 89 вечером пожалуйста", ("phone", "89123456789")),
        ("anna@localhost", None),
        ("a@b.c", None),
        ("anna@@example", None),
        ("my order 1234567 never arrived at all", None),
        ("2026-12-02", None),
        ("call 12345", None),
        ("+1234567890123456789", None),
    ],
)
def test_only_an_address_that_could_reach_the_customer_is_taken(text: str, expected) -> None:
    assert contact_in(text) == expected


def test_a_failed_attempt_is_told_apart_from_an_ordinary_message() -> None:
    assert looks_like_contact("anna@@example") and looks_like_contact("call 12345")
    assert not looks_like_contact("the router is still red")
