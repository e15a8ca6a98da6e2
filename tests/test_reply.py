"""What the customer sees for each decision."""

from __future__ import annotations

import json

from bot.kb import NONE, Match, Matcher, MatchSettings, load_dir
from bot.kb.reply import HUMAN_PAYLOAD, choice_payload, reply_for
from tests.test_kb_loader import GOOD


def test_answer_carries_links_and_quick_replies(write_kb) -> None:
    kb, _ = load_dir(write_kb({"a.yml": GOOD}))
    reply = reply_for(Matcher(kb).match("How do I pay my bill?"), kb)
    assert reply.text.startswith("Pay in the app under Billing.")
    assert "Pay online: https://brightline.example/pay" in reply.text
    assert reply.buttons == [{"title": "Direct debit", "payload": choice_payload("billing-direct-debit", "en")}]


def test_suggestion_offers_choices_then_a_person(write_kb) -> None:
    kb, _ = load_dir(write_kb({"a.yml": GOOD}))
    matcher = Matcher(kb, MatchSettings(answer_cutoff=100, suggest_cutoff=10))
    reply = reply_for(matcher.match("pay"), kb)
    assert reply.text.startswith("I want to make sure I get this right. Did you mean")
    assert [b["payload"] for b in reply.buttons][-1] == HUMAN_PAYLOAD
    first = reply.buttons[0]["payload"]
    assert json.loads(first.removeprefix("/faq_choice"))["faq_id"] in {"billing-pay-bill", "billing-direct-debit"}


def test_not_understood_offers_a_person(write_kb) -> None:
    kb, _ = load_dir(write_kb({"a.yml": GOOD}))
    reply = reply_for(Matcher(kb).match("zzzz qqqq"), kb)
    assert reply.text.startswith("Sorry, I didn't understand that.")
    assert reply.buttons == [{"title": "Talk to a person", "payload": HUMAN_PAYLOAD}]


def test_the_bots_own_words_come_in_the_customers_language(write_kb) -> None:
    kb, _ = load_dir(write_kb({"a.yml": GOOD}))
    # The wording of "not understood" only: whether the matcher declines mashing is
    # tests/test_kb_matcher.py's subject, on a knowledge base of realistic size.
    russian = reply_for(Match("ыва ыва", NONE, None, 0.0), kb, "ru")
    assert russian.text.startswith("Извините, я не понял")
    assert russian.buttons[0]["title"] == "Связаться с человеком"
    georgian = reply_for(Match("ქქქ", NONE, None, 0.0), kb, "ka")
    assert georgian.text.startswith("ბოდიში, ვერ გავიგე")
    assert reply_for(Match("zzzz", NONE, None, 0.0), kb, "fr").text.startswith("Sorry")  # unknown: English
