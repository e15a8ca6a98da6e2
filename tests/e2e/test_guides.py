"""Troubleshooting guides through the real stack: the trained model under ``rasa run``, the
action server, Redis and the handoff service; customers on the widget's socket.io channel,
on WhatsApp (interactive buttons, through the fake Graph API) and on REST; an agent reads
the card on the console's API.

The paths are found in the demo knowledge base itself (the first answers that lead to
``done`` or to ``handoff``), so editors can reword and reorder the guides freely."""

from __future__ import annotations

import asyncio
import json
from collections import deque

import pytest

from bot.kb import guides
from bot.kb.loader import load
from bot.kb.model import DONE, HANDOFF, Entry, pick
from bot.messages import say
from bot.settings import ROOT
from tests.e2e.clients import Agent, Customer
from tests.e2e.conftest import Stack, new_sender, new_webchat_id, wait_for
from tests.e2e.fake_graph import FakeGraphApi
from tests.e2e.test_channels import WA_SECRET, WHATSAPP, new_number, post, shown, whatsapp_text, whatsapp_webhook

PASSWORD = "guides agent pw"
KB = load(ROOT / "data" / "faq")
GUIDE = KB.get("outages-no-internet")
ASK = "my internet is not working"


def path_to(entry: Entry, goal: str) -> list[tuple[str, int]]:
    """The shortest run of (step id, option) from the first step to an answer leading to ``goal``."""
    assert entry.guide is not None
    queue = deque([(entry.guide.first.id, [])])
    seen = set()
    while queue:
        step_id, path = queue.popleft()
        if step_id in seen:
            continue
        seen.add(step_id)
        step = entry.guide.step(step_id)
        for index, option in enumerate(step.options):
            if option.then == goal:
                return [*path, (step_id, index)]
            if entry.guide.step(option.then) is not None:
                queue.append((option.then, [*path, (step_id, index)]))
    raise AssertionError(f"guide {entry.id} has no path to {goal}")


def ask_text(step_id: str, language: str = "en") -> str:
    return pick(GUIDE.guide.step(step_id).ask, language)


def payloads(messages: list[dict]) -> list[str]:
    return [b["payload"] for m in messages for b in m.get("buttons") or []]


def texts(messages: list[dict]) -> str:
    return "\n".join(m.get("text") or "" for m in messages)


@pytest.fixture(scope="module")
def agent(stack: Stack) -> str:
    stack.add_agent("gus", PASSWORD, capacity=50)
    return "gus"


def card(stack: Stack, conversation: str) -> dict:
    async def fetch() -> dict:
        async with Agent(stack.console_url, "gus", PASSWORD) as console:
            status, chat = await console.get(f"/api/chats/{conversation}")
            assert status == 200, chat
            return chat["card"]

    return asyncio.run(fetch())


def test_the_demo_guides_are_there_in_six_languages() -> None:
    found = [entry for entry in KB.entries if entry.guide is not None]
    assert len(found) >= 6, [e.id for e in found]
    for entry in found:
        assert set(entry.question) >= {"en", "ru", "ka", "sr", "lv", "tl"}, entry.id


def ending_of(goal: str, path: list[tuple[str, int]]) -> str:
    """What the customer reads last: the answer's reply, else the guide's resolved message
    (``done``) or the apology before a person takes over (``handoff``)."""
    last = GUIDE.guide.step(path[-1][0]).options[path[-1][1]]
    if last.reply:
        return pick(last.reply, "en")
    return pick(GUIDE.guide.resolved, "en") if goal == DONE else say("guide_exhausted", "en")


@pytest.mark.parametrize("goal", [DONE, HANDOFF])
def test_a_guide_followed_to_its_end_in_the_widget(stack: Stack, agent: str, goal: str) -> None:
    path = path_to(GUIDE, goal)
    conversation = new_webchat_id()

    async def run() -> None:
        async with Customer(stack.settings.rasa_url, conversation) as customer:
            await customer.say(ASK)
            step = await customer.expect(lambda m: ask_text(path[0][0]) in (m.get("text") or ""), what="first step")
            for number, (step_id, option) in enumerate(path):
                assert ask_text(step_id) in step["text"]
                payload = guides.answer_payload(GUIDE.id, step_id, option)
                assert payload in [b["payload"] for b in step.get("buttons") or []]
                await customer.say(payload)
                if number + 1 < len(path):
                    following = path[number + 1][0]
                    step = await customer.expect(lambda m, f=following: ask_text(f) in (m.get("text") or ""))
            ending = ending_of(goal, path)
            await customer.expect(lambda m: (m.get("text") or "") == ending, what="the guide's end")

    asyncio.run(run())
    if goal == HANDOFF:
        shown_card = card(stack, conversation)
        assert shown_card["reason"] == "guide_exhausted" and len(shown_card["guide"]["steps"]) == len(path)


def test_a_guide_ends_with_a_person_who_sees_every_step_tried(stack: Stack, agent: str) -> None:
    sender = new_sender()
    path = path_to(GUIDE, HANDOFF)
    replies = stack.say(sender, ASK)
    for step_id, option in path:
        assert ask_text(step_id) in texts(replies), (step_id, replies)
        replies = stack.say(sender, guides.answer_payload(GUIDE.id, step_id, option))
    shown_card = card(stack, f"rest:{sender}")
    assert shown_card["reason"] == "guide_exhausted", shown_card
    steps = shown_card["guide"]["steps"]
    assert [s["asked"] for s in steps] == [ask_text(step_id) for step_id, _ in path]
    step_of = GUIDE.guide.step
    assert [s["answer"] for s in steps] == [pick(step_of(s).options[o].title, "en") for s, o in path]
    assert stack.tracker(sender)["paused"]


def test_typed_answers_move_the_guide_on_in_russian(stack: Stack) -> None:
    sender = new_sender()
    first = GUIDE.guide.first
    no = next(i for i, option in enumerate(first.options) if option.means == "no")
    following = GUIDE.guide.step(first.options[no].then)
    assert following is not None, "the first step's 'no' should lead to another step"
    replies = stack.say(sender, "у меня не работает интернет дома")
    assert pick(first.ask, "ru") in texts(replies), replies
    replies = stack.say(sender, "нет")
    assert pick(following.ask, "ru") in texts(replies), replies
    assert stack.tracker(sender)["slots"]["guide"]["trail"][0]["typed"] == "нет"


def test_the_customer_can_ask_something_else_and_come_back(stack: Stack) -> None:
    sender = new_sender()
    stack.say(sender, ASK)
    replies = stack.say(sender, "how can I pay my bill?")
    assert stack.tracker(sender)["slots"]["kb_last_match"]["id"] == "billing-pay-bill"
    assert guides.RESUME_PAYLOAD in payloads(replies), replies
    replies = stack.say(sender, guides.RESUME_PAYLOAD)
    assert ask_text(GUIDE.guide.first.id) in texts(replies), replies
    # Asking the guide's question again continues too, rather than starting over.
    first, option = path_to(GUIDE, HANDOFF)[0]
    stack.say(sender, guides.answer_payload(GUIDE.id, first, option))
    at = stack.tracker(sender)["slots"]["guide"]["step"]
    replies = stack.say(sender, ASK)
    assert ask_text(at) in texts(replies) and stack.tracker(sender)["slots"]["guide"]["step"] == at


def test_that_did_not_help_hands_off_with_the_steps_so_far(stack: Stack, agent: str) -> None:
    sender = new_sender()
    stack.say(sender, ASK)
    first, option = path_to(GUIDE, HANDOFF)[0]
    stack.say(sender, guides.answer_payload(GUIDE.id, first, option))
    stack.say(sender, "none of this helps")
    shown_card = card(stack, f"rest:{sender}")
    assert shown_card["reason"] == "guide_exhausted"
    assert [s["asked"] for s in shown_card["guide"]["steps"]] == [ask_text(first)]


@pytest.mark.parametrize("goal", [DONE, HANDOFF])
def test_a_guide_on_whatsapp_is_tapped_through_interactive_buttons(
    stack: Stack, graph_api: FakeGraphApi, agent: str, goal: str
) -> None:
    number = new_number()
    path = path_to(GUIDE, goal)
    assert post(stack, WHATSAPP, whatsapp_text(number, ASK), WA_SECRET).status_code == 200
    for step_id, option in path:
        question = ask_text(step_id)
        sent = wait_for(
            lambda q=question: [
                s for s in graph_api.sent_to(number) if s.body.get("type") == "interactive" and q in shown(s)
            ]
        )
        assert sent, [shown(s) for s in graph_api.sent_to(number)]
        interactive = sent[-1].body["interactive"]
        assert interactive["type"] == "button"
        ids = [b["reply"]["id"] for b in interactive["action"]["buttons"]]
        titles = [b["reply"]["title"] for b in interactive["action"]["buttons"]]
        assert all(len(title) <= 20 for title in titles)
        picked = guides.answer_payload(GUIDE.id, step_id, option)
        assert picked in ids
        tap = {"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": picked}}}
        tap["interactive"]["button_reply"]["title"] = titles[ids.index(picked)]
        assert post(stack, WHATSAPP, whatsapp_webhook(number, tap), WA_SECRET).status_code == 200
    ending = ending_of(goal, path)
    assert wait_for(lambda: [s for s in graph_api.sent_to(number) if shown(s) == ending]), [
        shown(s) for s in graph_api.sent_to(number)
    ]
    conversation = f"whatsapp:{number}"
    assert json.loads(picked.removeprefix(f"/{guides.ANSWER_INTENT}"))["guide_id"] == GUIDE.id
    if goal == DONE:
        assert stack.tracker(conversation)["slots"]["guide"] is None
    else:
        shown_card = card(stack, conversation)
        assert shown_card["reason"] == "guide_exhausted" and shown_card["channel"] == "whatsapp"
        assert [s["asked"] for s in shown_card["guide"]["steps"]] == [ask_text(s) for s, _ in path]


def test_a_reply_the_bot_cannot_place_asks_the_step_again_with_its_buttons(stack: Stack) -> None:
    sender = new_sender()
    first = stack.say(sender, ASK)
    buttons = [p for p in payloads(first) if p.startswith(f"/{guides.ANSWER_INTENT}")]
    replies = stack.say(sender, "qwerty")
    assert say("guide_pick", "en") in texts(replies), replies
    assert [p for p in payloads(replies) if p.startswith(f"/{guides.ANSWER_INTENT}")] == buttons
    assert stack.tracker(sender)["slots"]["guide"]["step"] == GUIDE.guide.first.id
