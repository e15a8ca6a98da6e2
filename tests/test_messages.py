"""The bot's own sentences exist in every language it serves, with the same placeholders."""

from __future__ import annotations

import string
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.channels.guard import SLOW_DOWN, TOO_LONG, TRY_AGAIN, script_language
from bot.messages import _AT, _DAYS, TEXTS, say, when

LANGUAGES = ("en", "ru", "ka", "sr", "lv", "tl")
RIGA = ZoneInfo("Europe/Riga")


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("key", sorted(TEXTS))
def test_every_text_in_every_language_with_the_same_placeholders(key: str) -> None:
    texts = TEXTS[key]
    assert set(texts) == set(LANGUAGES)
    english = placeholders(texts["en"]) - {"plural"}
    for language in LANGUAGES:
        assert texts[language].strip(), (key, language)
        if language != "en":  # {plural} is English's "s"; other languages must not rely on it
            assert placeholders(texts[language]) == english, (key, language)


def test_the_day_tables_cover_every_language() -> None:
    assert set(_DAYS) == set(LANGUAGES)
    assert set(_AT) == set(LANGUAGES)
    for language, (today, tomorrow, weekday_form, weekdays) in _DAYS.items():
        assert today and tomorrow and len(weekdays) == 7 and all(weekdays), language
        assert placeholders(weekday_form) == {"weekday"}, language
        assert placeholders(_AT[language]) == {"day", "time"}, language


@pytest.mark.parametrize(
    ("language", "key", "values", "expected"),
    [
        ("sr", "goodbye", {}, "Hvala što ste se obratili kompaniji Brightline."),
        ("lv", "goodbye", {}, "Paldies, ka sazinājāties ar Brightline."),
        ("tl", "goodbye", {}, "Salamat po sa pakikipag-usap sa Brightline."),
        ("sr", "handoff_queue", {"position": 3, "minutes": 5}, "Trenutno ste 3. u redu"),
        ("lv", "handoff_queue", {"position": 3, "minutes": 5}, "Jūs esat 3. vietā rindā"),
        ("tl", "handoff_queue", {"position": 3, "minutes": 5}, "Ika-3 po kayo sa pila"),
        ("sr", "expected_wait", {"minutes": 1}, "oko 1 min."),
        ("lv", "expected_wait", {"minutes": 7}, "aptuveni 7 min."),
        ("tl", "expected_wait", {"minutes": 7}, "mga 7 min."),
        ("sr", "agent_joined", {"agent": "Ana"}, "ovde Ana iz tima podrške"),
        ("lv", "agent_joined", {"agent": "Anna"}, "Šeit Anna no Brightline"),
        ("tl", "agent_joined", {"agent": "Ana"}, "si Ana po ito"),
        ("sr", "answer_in_default_language", {}, "na srpskom"),
        ("lv", "answer_in_default_language", {}, "latviešu valodā"),
        ("tl", "answer_in_default_language", {}, "sa Tagalog"),
    ],
)
def test_say_answers_in_the_customers_language(language: str, key: str, values: dict, expected: str) -> None:
    text = say(key, language, **values)
    assert expected in text
    assert text == TEXTS[key][language].format(**values)
    assert text != say(key, "en", **values)


def test_say_fills_every_placeholder_in_every_language() -> None:
    values = {"position": 2, "minutes": 4, "agent": "Nino", "hours": "Mon-Fri 08:00-20:00", "zone": "Europe/Riga"}
    values["contact"] = "anna@example.lv"
    values["name"] = "Anna"
    for key in TEXTS:
        for language in LANGUAGES:
            text = say(key, language, back="BACK", **values)
            assert "{" not in text and "}" not in text, (key, language)


def test_say_falls_back_to_english() -> None:
    assert say("goodbye", "de") == TEXTS["goodbye"]["en"]
    assert say("goodbye", None) == TEXTS["goodbye"]["en"]
    assert say("expected_wait", "en", minutes=1) == " Expected wait: about 1 minute."
    assert say("expected_wait", "en", minutes=2) == " Expected wait: about 2 minutes."


NOW = datetime(2024, 5, 15, 21, 0, tzinfo=RIGA)  # a Wednesday evening


@pytest.mark.parametrize(
    ("language", "today", "tomorrow", "monday"),
    [
        ("en", "today at 22:30", "tomorrow at 08:00", "on Monday at 08:00"),
        ("ru", "сегодня в 22:30", "завтра в 08:00", "в понедельник в 08:00"),
        ("ka", "დღეს 22:30-ზე", "ხვალ 08:00-ზე", "ორშაბათს 08:00-ზე"),
        ("sr", "danas u 22:30", "sutra u 08:00", "u ponedeljak u 08:00"),
        ("lv", "šodien plkst. 22:30", "rīt plkst. 08:00", "pirmdien plkst. 08:00"),
        ("tl", "ngayong araw nang 22:30", "bukas nang 08:00", "sa Lunes nang 08:00"),
    ],
)
def test_when_in_every_language(language: str, today: str, tomorrow: str, monday: str) -> None:
    assert when(datetime(2024, 5, 15, 22, 30, tzinfo=RIGA), NOW, language) == today
    assert when(datetime(2024, 5, 16, 8, 0, tzinfo=RIGA), NOW, language) == tomorrow
    assert when(datetime(2024, 5, 20, 8, 0, tzinfo=RIGA), NOW, language) == monday


def test_when_falls_back_to_english() -> None:
    assert when(datetime(2024, 5, 16, 8, 0, tzinfo=RIGA), NOW, "de") == "tomorrow at 08:00"


@pytest.mark.parametrize("replies", [TOO_LONG, SLOW_DOWN, TRY_AGAIN], ids=["too_long", "slow_down", "try_again"])
def test_the_guards_replies_in_every_language(replies: dict[str, str]) -> None:
    assert set(replies) == set(LANGUAGES)
    for language in LANGUAGES:
        assert replies[language].strip(), language
        assert placeholders(replies[language]) == placeholders(replies["en"]), language


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Здравствуйте, у меня не работает интернет", "ru"),
        ("გამარჯობა, ინტერნეტი არ მუშაობს", "ka"),
        ("Hello, my internet is down", "en"),
        ("", "en"),
    ],
)
def test_script_language_is_a_language_the_guard_speaks(text: str, expected: str) -> None:
    assert script_language(text) == expected
    assert script_language(text) in TOO_LONG


def test_script_language_for_the_latin_languages_is_one_the_guard_speaks() -> None:
    for text in (
        "Zdravo, ne radi mi internet, šta da radim?",
        "Labdien, man nestrādā internets.",
        "Magandang araw po, wala po akong internet.",
    ):
        assert script_language(text) in {"en", "sr", "lv", "tl"}
