"""Language guessing on realistic chat messages in all six languages, and its fallbacks."""

from __future__ import annotations

import time

import pytest

from bot.language import LANGUAGE_NAMES, SUPPORTED, guess_language, serbian_in_latin

MESSAGES: dict[str, list[str]] = {
    "en": [
        "How do I pay my bill?",
        "my internet has been down since this morning",
        "Can I change my plan to the cheaper one?",
        "why was I charged twice this month",
        "I need to talk to someone about my contract",
        "The router keeps restarting every few minutes, what should I do?",
        "is there an outage in my area",
        "hi, I'd like to cancel my subscription",
        "My phone says no service since yesterday",
        "how much does roaming cost in Turkey?",
        "I never received my new SIM card",
        "can you tell me when my contract ends",
        "the wifi is really slow tonight",
        "I moved house, how do I transfer my broadband",
        "this is the third time I'm asking about the refund",
        "what's the PIN for my voicemail",
        "Please send me a copy of my last invoice",
        "why is my data running out so fast",
        "Where can I see my usage?",
        "I want to port my number from another provider",
    ],
    "ru": [
        "Как оплатить счёт?",
        "у меня не работает интернет",
        "Почему так дорого в этом месяце?",
        "Здравствуйте, хочу сменить тариф",
        "мне дважды списали деньги",
        "когда починят связь в нашем районе",
        "Роутер постоянно перезагружается, что делать?",
        "не могу дозвониться до оператора",
        "сколько стоит роуминг в Турции",
        "я не получил новую сим-карту",
        "подскажите, как подключить домашний интернет",
        "связь пропадает каждый вечер",
        "верните мои деньги пожалуйста",
        "где посмотреть остаток трафика",
        "хочу перенести номер от другого оператора",
        "интернет очень медленный уже третий день",
        "Можно ли заморозить договор на месяц?",
        "пришел счет больше обычного",
        "как узнать свой пин код",
        "заблокируйте мою сим карту, ее украли",
    ],
    "ka": [
        "როგორ გადავიხადო ანგარიში?",
        "ინტერნეტი არ მუშაობს",
        "რატომ არის ეს თვე ასე ძვირი?",
        "მინდა ტარიფის შეცვლა",
        "ორჯერ ჩამომეჭრა თანხა",
        "როდის აღდგება კავშირი?",
        "როუტერი სულ იტვირთება თავიდან",
        "ოპერატორს ვერ ვუკავშირდები",
        "რა ღირს როუმინგი თურქეთში?",
        "ახალი სიმ ბარათი არ მიმიღია",
        "wifi ძალიან ნელია",
        "გამარჯობა, მინდა ხელშეკრულების გაუქმება",
        "სად ვნახო დარჩენილი ინტერნეტი",
        "ნომრის გადმოტანა მინდა სხვა ოპერატორიდან",
        "Brightline-ის აპლიკაცია არ იხსნება",
        "PIN კოდი დამავიწყდა",
    ],
    "sr-cyrillic": [
        "Како да платим рачун?",
        "интернет не ради од јутрос",
        "Зашто ми је рачун толико велики овог месеца?",
        "Добар дан, хоћу да променим пакет",
        "скинули су ми новац два пута",
        "када ће бити поправљена мрежа у мом крају",
        "рутер се стално рестартује, шта да радим?",
        "не могу да добијем оператера",
        "колико кошта роминг у Турској",
        "нисам добио нову сим картицу",
        "интернет је јако спор вечерас",
        "преселио сам се, како да пребацим интернет на нову адресу",
        "где могу да видим потрошњу",
        "хоћу да пренесем број од другог оператера",
        "молим вас пошаљите ми последњи рачун",
        "немам сигнал у стану",
        "да ли могу да паузирам уговор на месец дана",
    ],
    "sr-latin": [
        "kako da platim racun?",
        "Internet ne radi od jutros",
        "zašto mi je račun toliko veliki ovog meseca",
        "dobar dan, hoću da promenim paket",
        "skinuli su mi pare dva puta",
        "kada ce biti popravljena mreza kod nas",
        "ruter se stalno restartuje sta da radim",
        "ne mogu da dobijem operatera",
        "koliko kosta roming u Turskoj?",
        "nisam dobio novu sim karticu",
        "net je jako spor veceras",
        "preselila sam se, kako da prebacim internet",
        "gde mogu da vidim potrošnju",
        "hocu da prenesem broj od drugog operatera",
        "molim vas posaljite mi poslednji racun",
        "nemam signal u stanu",
        "da li mogu da pauziram ugovor?",
    ],
    "lv": [
        "Kā es varu samaksāt rēķinu?",
        "man nestrādā internets",
        "Kāpēc šomēnes rēķins ir tik liels?",
        "Labdien, vēlos mainīt tarifu",
        "naudu noņēma divreiz",
        "kad salabos savienojumu mūsu rajonā?",
        "rūteris visu laiku restartējas, ko darīt?",
        "nevaru sazvanīt operatoru",
        "cik maksā viesabonēšana Turcijā",
        "es nesaņēmu jauno SIM karti",
        "internets vakaros ir ļoti lēns",
        "kur var redzēt atlikušos datus",
        "gribu pārnest numuru no cita operatora",
        "lūdzu atsūtiet man pēdējo rēķinu",
        # typed without diacritics
        "ka es varu samaksat rekinu",
        "man nav interneta jau otro dienu",
        "kapec man ir tik liels rekins",
        "ludzu palidziet, telefons nerada signalu",
        "vai var apturet ligumu uz menesi",
        "mans internets ir loti lens",
        "sveiki, gribu mainit tarifu",
    ],
    "tl": [
        "ang bagal ng internet ko po",
        "paano po magbayad ng bill?",
        "bakit ang laki ng bill ko ngayong buwan",
        "hindi gumagana yung wifi namin since kahapon",
        "pwede po bang magpalit ng plan?",
        "nacharge ako ng dalawang beses",
        "kailan po maaayos ang signal dito sa amin",
        "paulit-ulit nagre-restart yung router, ano gagawin ko",
        "hindi ko makontak ang customer service",
        "magkano ang roaming sa Japan?",
        "hindi ko pa natatanggap yung bagong SIM",
        "walang signal sa bahay namin",
        "san ko makikita yung data usage ko",
        "gusto ko po ilipat yung number ko from other network",
        "pakisend naman po ng latest bill ko",
        "nag-load ako pero hindi pumasok",
        "ang hina ng signal dito sa office",
        "pwede ba i-pause muna yung contract ko",
        "my internet is so slow lang talaga today, pa check naman po",
        "Hello po, tanong ko lang kung may outage ba sa Cavite",
    ],
}


@pytest.mark.parametrize("group", sorted(MESSAGES))
def test_realistic_messages_are_detected_in_each_language(group: str) -> None:
    expected = group.split("-")[0]
    messages = MESSAGES[group]
    assert len(messages) >= 15
    wrong = [(text, guess) for text in messages if (guess := guess_language(text)) != expected]
    assert len(wrong) <= 0.1 * len(messages), wrong


@pytest.mark.parametrize("text", ["", "   ", "12345", "+381 64 123 4567", "😀😀", "👍", "!!!", "???", "100%"])
def test_text_without_letters_gives_the_default(text: str) -> None:
    assert guess_language(text) == "en"
    assert guess_language(text, default="lv") == "lv"


@pytest.mark.parametrize("text", ["ok", "da", "na", "ko", "SIM", "5G", "wifi?", "Brightline"])
def test_short_or_ambiguous_latin_text_gives_the_default(text: str) -> None:
    assert guess_language(text) == "en"
    assert guess_language(text, default="tl") == "tl"
    assert guess_language(text, default="sr") == "sr"


def test_cyrillic_without_evidence_is_russian_unless_the_default_is_serbian() -> None:
    assert guess_language("интернет") == "ru"
    assert guess_language("интернет", default="sr") == "sr"
    assert guess_language("интернет", default="ru") == "ru"


def test_script_beats_brand_names_and_default() -> None:
    assert guess_language("Brightline router не работает") == "ru"
    assert guess_language("Brightline router не ради") == "sr"
    assert guess_language("Brightline-ის როუტერი არ მუშაობს", default="lv") == "ka"
    assert guess_language("SIM karte nestrādā", default="sr") == "lv"


def test_taglish_is_tagalog_but_english_with_one_filipino_word_is_english() -> None:
    assert guess_language("my bill is so high naman, bakit ganun?") == "tl"
    assert guess_language("can you check my account please, I have not received my bill po") == "en"


def test_georgian_typed_in_latin_letters_is_georgian() -> None:
    messages = [
        "interneti ar mushaobs",
        "gamarjoba, rogor gadavixado angarishi?",
        "ratom aris chemi angarishi ase didi",
        "madloba, yvelaferi kargad aris",
        "ukve mesame dghea interneti ar maqvs",
        "tarifshi roumingi shedis?",
    ]
    wrong = [(text, guess) for text in messages if (guess := guess_language(text)) != "ka"]
    assert not wrong, wrong


def test_every_supported_language_has_a_name() -> None:
    assert SUPPORTED == ("en", "ru", "ka", "sr", "lv", "tl")
    assert set(LANGUAGE_NAMES) == set(SUPPORTED)
    assert LANGUAGE_NAMES["lv"] == "Latvian" and LANGUAGE_NAMES["tl"] == "Tagalog"


def test_results_are_always_supported_languages() -> None:
    for messages in MESSAGES.values():
        for text in messages:
            assert guess_language(text, default="xx") in (*SUPPORTED, "xx")


def test_fast_enough_to_run_on_every_message() -> None:
    text = ("Zdravo, internet ne radi od jutros i ne mogu da platim racun preko aplikacije. " * 3)[:200]
    start = time.perf_counter()
    for _ in range(1000):
        guess_language(text)
    per_call = (time.perf_counter() - start) / 1000
    assert per_call < 1e-3, f"{per_call * 1e6:.0f} µs per 200-character message"  # ~10x headroom over the target


def test_serbian_cyrillic_is_written_in_latin_letter_for_letter() -> None:
    assert serbian_in_latin("Љубазно њих, џабе! ЂУРА ЋЕ ЧЕКАТИ") == "Ljubazno njih, džabe! ĐURA ĆE ČEKATI"
    assert serbian_in_latin("Рачун ми није стигао") == "Račun mi nije stigao"


@pytest.mark.parametrize("text", ["Счёт не пришёл, что делать?", "Račun mi nije stigao", "hello", ""])
def test_only_serbian_cyrillic_is_written_in_latin(text: str) -> None:
    assert serbian_in_latin(text) is None
