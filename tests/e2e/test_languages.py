"""Six languages and the sentence encoder through the real stack: the trained NLU model
(encoder featurizer + logistic regression) under ``rasa run``, the action server, Redis,
the handoff service and an agent on the console's API."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.clients import Agent
from tests.e2e.conftest import Stack, new_sender

PASSWORD = "correct horse battery staple"
HUMAN_BUTTON = "/request_human"


def texts(messages: list[dict]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


@pytest.fixture(scope="module")
def agent(stack: Stack) -> str:
    stack.add_agent("lina", PASSWORD, capacity=20)
    return "lina"


def card(stack: Stack, agent: str, sender: str) -> dict:
    async def fetch() -> dict:
        async with Agent(stack.console_url, agent, PASSWORD) as console:
            _, chat = await console.get(f"/api/chats/rest:{sender}")
            return chat["card"]

    return asyncio.run(fetch())


@pytest.mark.parametrize("text", ["qwerty", "asdf", "hmm", "jjjjjj"])
def test_keyboard_mashing_is_not_understood_not_welcomed(stack: Stack, text: str) -> None:
    replies = stack.say(new_sender(), text)
    assert "didn't understand" in texts(replies), replies
    assert "welcome" not in texts(replies).lower() and "Great!" not in texts(replies)
    assert HUMAN_BUTTON in [b["payload"] for m in replies for b in m.get("buttons", [])]


def test_a_question_about_something_else_gets_what_the_bot_can_do(stack: Stack) -> None:
    replies = stack.say(new_sender(), "what's a good recipe for banana bread")
    assert "I can only help with Brightline" in texts(replies), replies


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("actually I need a person again", "en"),
        ("gribu runāt ar cilvēku, lūdzu", "lv"),
        ("možete li da me spojite sa operaterom", "sr"),
        ("pwede po bang makausap ang isang tao", "tl"),
        ("ადამიანთან მინდა საუბარი", "ka"),
    ],
)
def test_asking_for_a_person_in_any_language_hands_off(stack: Stack, agent: str, text: str, language: str) -> None:
    sender = new_sender()
    stack.say(sender, text)
    shown = card(stack, agent, sender)
    assert shown["reason"] == "asked_for_human" and shown["language"] == language, shown


def test_an_angry_message_in_serbian_hands_off_at_once(stack: Stack, agent: str) -> None:
    sender = new_sender()
    stack.say(sender, "ovo je čista pljačka, lopovi jedni")
    shown = card(stack, agent, sender)
    assert shown["reason"] == "frustrated" and shown["language"] == "sr", shown


def test_a_latvian_customer_is_answered_in_latvian_and_the_language_is_remembered(stack: Stack) -> None:
    sender = new_sender()
    replies = stack.say(sender, "kā es varu samaksāt rēķinu?")
    assert stack.tracker(sender)["slots"]["kb_last_match"]["id"] == "billing-pay-bill"
    assert "Pay now" in texts(replies) and "rēķin" in texts(replies).lower(), replies
    assert stack.tracker(sender)["slots"]["language"] == "lv"
    # "wifi" alone says nothing about the language: the bot keeps speaking Latvian.
    replies = stack.say(sender, "wifi")
    assert stack.tracker(sender)["slots"]["language"] == "lv"
    # An entry with no Latvian answer (tests/data/kb_extra): the English one, under a
    # one-line note in Latvian.
    replies = stack.say(sender, "vai jūs pārdodat dāvanu kartes?")
    assert stack.tracker(sender)["slots"]["kb_last_match"]["id"] == "shop-gift-cards"
    assert "gift cards from €10" in texts(replies), replies
    assert texts(replies).startswith("Šī atbilde vēl nav pieejama latviešu valodā"), replies


def test_the_nlu_embeds_each_message_once_for_everyone(stack: Stack) -> None:
    sender = new_sender()
    stack.say(sender, "my internet is not working")
    events = stack.tracker(sender)["events"]
    user = [e for e in events if e.get("event") == "user"][-1]
    assert isinstance(user["parse_data"].get("text_vector"), str)  # handed to the actions
    match = stack.tracker(sender)["slots"]["kb_last_match"]
    assert (match["decision"], match["id"]) == ("answer", "outages-no-internet")
