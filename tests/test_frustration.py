"""Frustration and complexity scoring: per-message signals, the conversation decision, and the CLI contract."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from bot import frustration_lexicon as lexicon
from bot.frustration import (
    ANSWER,
    NONE,
    REASONS,
    SUGGEST,
    Decision,
    FrustrationSettings,
    Turn,
    asks_for_human,
    assess,
    frustration_settings_from_env,
    lexical_score,
    message_score,
    turns_from_texts,
)
from bot.kb import Matcher, load
from bot.settings import SettingsError
from tests.conftest import DEMO_KB, ROOT

EVAL = [
    json.loads(line)
    for line in (ROOT / "tests" / "data" / "frustration.jsonl").read_text(encoding="utf-8").splitlines()
    if line.strip()
]


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load(DEMO_KB))


def signals(text: str) -> dict[str, float]:
    return message_score(text)[1]


def answered(text: str, entry_id: str, sensitive: bool = False) -> Turn:
    return Turn(text, outcome=ANSWER, entry_id=entry_id, sensitive=sensitive)


def fallback(text: str) -> Turn:
    return Turn(text, outcome=NONE)


# --- per-message signals -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "how do I pay my bill?",
        "my internet is not working",
        "thanks!",
        "thanks!!",
        "not bad",
        "Hello, what plans do you offer?",
        "Can I get next-day delivery?",
        "What is my SIM PIN?",
        "I want to switch to another operator",
        "Как оплатить счёт?",
        "интернет не работает",
        "спасибо!",
        "ინტერნეტი არ მუშაობს",
        "როგორ გადავიხადო ანგარიში?",
        "მადლობა!",
    ],
)
def test_polite_questions_and_problem_reports_score_low(text: str) -> None:
    score, fired = message_score(text)
    assert score < 0.2, fired


@pytest.mark.parametrize(
    "text",
    [
        "this is useless",
        "ridiculous",
        "terrible service",
        "I'm fed up with this",
        "what a waste of time",
        "это бесполезно",
        "ужасный сервис",
        "вы меня достали",
        "надоело",
        "ეს უსარგებლოა",
        "საშინელი მომსახურებაა",
        "მომბეზრდა",
        "დროის კარგვაა",
    ],
)
def test_angry_words_fire_in_english_russian_and_georgian(text: str) -> None:
    assert "anger" in signals(text)


def test_russian_and_georgian_stems_match_inflected_forms() -> None:
    for text in ("бесполезный бот", "бесполезная поддержка", "ужасно", "ужасные условия", "საშინელება"):
        assert "anger" in signals(text), text


@pytest.mark.parametrize(
    "text", ["not bad", "not terrible at all", "it isn't useless", "не ужасно", "არ არის საშინელი"]
)
def test_negated_anger_does_not_fire(text: str) -> None:
    assert "anger" not in signals(text)


@pytest.mark.parametrize(
    "text",
    [
        "it doesn't work, ridiculous",
        "Internet ne radi, sramota",
        "интернет не работает, позор",
        "svaki mesec novi trošak koji niko ne objašnjava, dosta više",
    ],
)
def test_a_negator_does_not_reach_past_the_end_of_its_clause(text: str) -> None:
    # The two words before "sramota" are "ne radi": read as "not a disgrace", the anger was dropped.
    assert "anger" in signals(text)


@pytest.mark.parametrize(
    "text",
    [
        "damn it",
        "wtf",
        "this is crap",
        "oh shit",
        "f*ck this",
        "what the f**k",
        "sh!t",
        "блин",
        "чёрт возьми",
        "ჯანდაბა",
    ],
)
def test_profanity_fires_including_masked_forms(text: str) -> None:
    assert "profanity" in signals(text)


def test_shouting_needs_enough_letters_and_works_for_cyrillic_not_georgian() -> None:
    assert "caps" in signals("WHY IS MY BILL SO HIGH")
    assert "caps" in signals("ПОЧЕМУ ТАК ДОРОГО")
    assert "caps" not in signals("HELP ME")  # fewer than 8 letters: could be an acronym
    assert "caps" not in signals("What is my SIM PIN and PUK?")
    assert "caps" not in signals("ინტერნეტი არ მუშაობს დიდი ხანია")  # Georgian has no case


def test_repeated_punctuation_fires_and_more_is_worse() -> None:
    for text in ("why!!!", "why???", "what?!?!", "really?!"):
        assert "punctuation" in signals(text), text
    assert "punctuation" not in signals("why? and how!")
    assert signals("why!!!!!!")["punctuation"] > signals("why!!!")["punctuation"] > signals("why!!")["punctuation"]


def test_shouting_and_exclamations_intensify_anger_more_than_a_neutral_question() -> None:
    assert signals("this is useless!!!")["punctuation"] > signals("where is my parcel!!!")["punctuation"]
    assert signals("THIS IS USELESS")["caps"] > signals("WHERE IS MY PARCEL")["caps"]


@pytest.mark.parametrize(
    "text",
    [
        "let me talk to a human",
        "real person please",
        "agent please",
        "operator",
        "can I speak to someone",
        "I'd like to talk to a manager",
        "позовите оператора",
        "хочу поговорить с человеком",
        "соедините с живым человеком",
        "ოპერატორი",
        "ადამიანთან მინდა საუბარი",
        "ცოცხალ ადამიანს დამაკავშირეთ",
    ],
)
def test_requests_for_a_person_are_recognised_in_every_language(text: str) -> None:
    assert "human" in signals(text)


@pytest.mark.parametrize(
    "text",
    [
        "I want to switch to another operator",
        "сменить оператора",
        "перейти к другому оператору",
        "მობილური ოპერატორი",
        "Nikad gori operater, a bio sam kod svih",  # "never a worse carrier"
        "Bolje da sam ostao kod starog operatera",
    ],
)
def test_mobile_operator_is_not_a_request_for_a_person(text: str) -> None:
    assert "human" not in signals(text)


@pytest.mark.parametrize("text", ["that didn't help", "still not working", "не помогло", "არ დამეხმარა"])
def test_not_helped_feedback_is_mild_on_its_own(text: str) -> None:
    score, fired = message_score(text)
    assert "feedback" in fired
    assert score < 0.2


@pytest.mark.parametrize(
    "text",
    [
        # Found by a Serbian probe of our own: sarcasm and rhetorical insults, no angry word.
        "Hvala na ničemu, baš ste od velike pomoći",
        "Хвала на ничему",
        "Da li vi uopšte znate šta radite?",
        "Да ли ви уопште знате шта радите?",
        "thanks for nothing",
        "do you even know what you are doing?",
    ],
)
def test_sarcasm_and_rhetorical_insults_hand_off_at_once(text: str) -> None:
    assert assess([Turn(text=text)]).handoff, message_score(text)


def test_one_clearly_angry_message_reaches_the_threshold() -> None:
    threshold = FrustrationSettings().threshold
    for text in (
        "This is ridiculous, you are useless!!!",
        "THIS IS USELESS!!!",
        "это просто ужасно, бесполезный бот!!!",
    ):
        assert message_score(text)[0] >= threshold, text
    # Shouting or "!!!" on a plain question or a calm report is urgency, not anger.
    for text in ("how do I pay my bill!!!", "WHERE IS MY PARCEL", "my internet has been down since monday"):
        assert message_score(text)[0] < threshold, text


def test_scores_stay_within_zero_and_one() -> None:
    words = [*lexicon.ANGER[:20], *lexicon.PROFANITY[:15], "HUMAN", "!!!!!!", "???", "ОПЕРАТОР", "ужас"]
    rng = random.Random(7)
    messages = [" ".join(rng.choices(words, k=rng.randint(1, 12))).replace("*", "") for _ in range(200)]
    messages.append("FUCK THIS USELESS RIDICULOUS TERRIBLE BOT!!!!!! ?!?!?! HUMAN NOW DAMN SHIT WTF")
    for text in messages:
        score, fired = message_score(text)
        assert 0.0 <= score <= 1.0, text
        assert all(0.0 <= value <= 1.0 for value in fired.values()), (text, fired)
    outcomes = [ANSWER, SUGGEST, NONE, None]
    turns = [Turn(m, outcome=rng.choice(outcomes), entry_id=rng.choice(["a", "b", None])) for m in messages]
    decision = assess(turns)
    assert len(decision.scores) == len(turns) == len(decision.signals)
    assert all(0.0 <= s <= 1.0 for s in decision.scores)


# --- across the conversation ---------------------------------------------------------------


def test_calm_customer_with_several_questions_is_not_handed_off() -> None:
    decision = assess(
        [
            Turn("hi"),
            answered("How do I pay my bill?", "billing-pay-bill"),
            answered("how long does delivery take?", "delivery-time"),
            answered("what plans do you offer?", "plans-offer"),
            Turn("thanks!"),
        ]
    )
    assert decision == Decision(False, None, None, (0.0, 0.0, 0.0, 0.0, 0.0), decision.signals)


def test_asking_for_a_person_hands_off_even_when_calm() -> None:
    decision = assess([answered("How do I pay my bill?", "billing-pay-bill"), Turn("could I talk to a human please")])
    assert (decision.handoff, decision.at_turn, decision.reason) == (True, 2, "asked_for_human")
    assert decision.scores[-1] < FrustrationSettings().threshold


def test_sensitive_entry_hands_off_when_answered_but_not_when_only_suggested() -> None:
    answered_turn = assess([Turn("hi"), answered("my account has been hacked", "account-report-fraud", sensitive=True)])
    assert (answered_turn.at_turn, answered_turn.reason) == (2, "sensitive_topic")
    suggested = assess([Turn("hacked?", outcome=SUGGEST, entry_id="account-report-fraud", sensitive=True)])
    assert not suggested.handoff


def test_fallbacks_hand_off_when_they_reach_max_fallbacks() -> None:
    decision = assess([fallback("blorp"), fallback("zzz qwerty")])
    assert (decision.at_turn, decision.reason) == (2, "repeated_fallback")


def test_fallbacks_count_within_the_last_few_turns_not_forever() -> None:
    close = assess([fallback("blorp"), answered("pay bill", "billing-pay-bill"), fallback("zzz")])
    assert (close.at_turn, close.reason) == (3, "repeated_fallback")
    far = [fallback("blorp")] + [answered(f"question {i}", f"entry-{i}") for i in range(4)] + [fallback("zzz")]
    assert not assess(far).handoff


def test_same_question_asked_again_raises_the_score_and_hands_off_the_third_time() -> None:
    decision = assess(
        [
            answered("How do I pay my bill?", "billing-pay-bill"),
            Turn("how do i pay my bill", outcome=SUGGEST, entry_id="billing-pay-bill"),
            Turn("I ASKED how do I pay my bill", outcome=SUGGEST, entry_id="billing-pay-bill"),
        ]
    )
    assert "repeated_question" in decision.signals[1]
    assert (decision.at_turn, decision.reason) == (3, "repeated_question")


def test_same_entry_answered_again_counts_as_repeated_question() -> None:
    decision = assess(
        [answered("ways to pay", "billing-pay-bill"), answered("where can I settle what I owe", "billing-pay-bill")]
    )
    assert "repeated_question" in decision.signals[1]


def test_related_follow_up_question_is_not_a_repeat() -> None:
    decision = assess([answered("how do I return an item", "returns-how"), Turn("is it free to return an item")])
    assert "repeated_question" not in decision.signals[1]


def test_anger_said_twice_is_not_a_repeated_question() -> None:
    decision = assess([Turn("this is useless"), Turn("this is useless")])
    assert "repeated_question" not in decision.signals[1]


def test_didnt_help_right_after_an_answer_hands_off_but_not_after_a_fallback() -> None:
    for text in ("that didn't help", "не помогло", "არ დამეხმარა", "still not working"):
        decision = assess([answered("How do I reset my router?", "devices-reset-router"), Turn(text)])
        assert (decision.at_turn, decision.reason) == (2, "not_helped"), text
    after_fallback = assess([Turn("zzz"), Turn("that didn't help")])
    assert not after_fallback.handoff


def test_small_talk_between_answer_and_feedback_does_not_hide_it() -> None:
    decision = assess([answered("How do I reset my router?", "devices-reset-router"), Turn("ok"), Turn("didn't help")])
    assert (decision.at_turn, decision.reason) == (3, "not_helped")


def test_frustration_builds_up_over_turns_and_fades_when_the_customer_calms_down() -> None:
    # The lexicon's mild words alone (the tone model, which would hand off "useless" at
    # once, is switched off) show the memory across turns.
    texts = ["this is useless", "useless", "I'm fed up", "ok", "ok"]
    decision = assess([Turn(text, tone=False) for text in texts])
    assert (decision.at_turn, decision.reason) == (3, "frustrated")
    assert decision.scores[0] < decision.scores[1] < decision.scores[2]
    assert decision.scores[2] > decision.scores[3] > decision.scores[4]


def test_scores_are_computed_for_every_turn_after_the_handoff() -> None:
    decision = assess([Turn("agent please"), Turn("THIS IS RIDICULOUS!!!"), Turn("thanks")])
    assert decision.at_turn == 1
    assert len(decision.scores) == 3
    assert decision.scores[1] > decision.scores[0]
    assert "anger" in decision.signals[1]


def test_priority_when_several_reasons_fire_on_the_same_turn() -> None:
    human_and_sensitive = assess([answered("my account was hacked, get me a human", "account-report-fraud", True)])
    assert human_and_sensitive.reason == "asked_for_human"
    sensitive_and_angry = assess([answered("my account was hacked, this is ridiculous!!!", "fraud", True)])
    assert sensitive_and_angry.reason == "sensitive_topic"
    fallback_and_angry = assess([fallback("blorp"), fallback("wtf this is useless garbage!!!")])
    assert fallback_and_angry.reason == "repeated_fallback"
    repeat_and_angry = assess(
        [answered("how do I pay my bill", "billing-pay-bill"), Turn("HOW DO I PAY MY BILL, THIS IS RIDICULOUS!!!")]
    )
    assert repeat_and_angry.reason == "repeated_question"
    assert REASONS[0] == "asked_for_human" and REASONS[-1] == "frustrated"


def test_empty_conversation_is_not_handed_off() -> None:
    assert assess([]) == Decision(False, None, None, (), ())


# --- settings ------------------------------------------------------------------------------


def test_higher_threshold_or_more_fallbacks_change_the_decision() -> None:
    angry = [Turn("damn, this is useless")]
    assert assess(angry).reason == "frustrated"
    assert not assess(angry, FrustrationSettings(threshold=0.99)).handoff
    assert not assess([Turn("I'm fed up")]).handoff
    assert assess([Turn("I'm fed up")], FrustrationSettings(threshold=0.4)).handoff
    lost = [fallback("blorp"), fallback("zzz"), fallback("qwerty")]
    assert assess(lost).at_turn == 2
    assert assess(lost, FrustrationSettings(max_fallbacks=3)).at_turn == 3
    assert not assess(lost[:2], FrustrationSettings(max_fallbacks=3)).handoff


def test_frustration_settings_are_read_from_the_environment() -> None:
    assert frustration_settings_from_env({}) == FrustrationSettings()
    settings = frustration_settings_from_env({"FRUSTRATION_THRESHOLD": "0.85", "FRUSTRATION_MAX_FALLBACKS": "4"})
    assert (settings.threshold, settings.max_fallbacks) == (0.85, 4)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"FRUSTRATION_THRESHOLD": "high"}, "FRUSTRATION_THRESHOLD"),
        ({"FRUSTRATION_THRESHOLD": "1.5"}, "FRUSTRATION_THRESHOLD"),
        ({"FRUSTRATION_THRESHOLD": "0"}, "FRUSTRATION_THRESHOLD"),
        ({"FRUSTRATION_MAX_FALLBACKS": "two"}, "FRUSTRATION_MAX_FALLBACKS"),
        ({"FRUSTRATION_MAX_FALLBACKS": "2.5"}, "FRUSTRATION_MAX_FALLBACKS"),
        ({"FRUSTRATION_MAX_FALLBACKS": "0"}, "FRUSTRATION_MAX_FALLBACKS"),
    ],
)
def test_bad_frustration_setting_names_the_variable(env: dict, name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        frustration_settings_from_env(env)


# --- with the knowledge base ---------------------------------------------------------------


def test_turns_from_texts_uses_the_matcher_and_marks_small_talk(matcher: Matcher) -> None:
    turns = turns_from_texts(
        ["hello", "How do I pay my bill?", "blorp zzz", "my account has been hacked", "agent please", "спасибо"],
        matcher,
    )
    assert [t.outcome for t in turns] == [None, ANSWER, NONE, ANSWER, None, None]
    assert turns[1].entry_id == "billing-pay-bill" and not turns[1].sensitive
    assert turns[3].entry_id == "account-report-fraud" and turns[3].sensitive


def test_feedback_and_venting_the_kb_cannot_match_are_not_fallbacks(matcher: Matcher) -> None:
    turns = turns_from_texts(["that didn't help", "this is ridiculous"], matcher)
    assert [t.outcome for t in turns] == [None, None]


def test_evaluation_set_covers_every_reason_and_language() -> None:
    reasons = Counter(item["reason"] for item in EVAL)
    assert set(REASONS) <= set(reasons)
    assert reasons[None] >= 15
    text = " ".join(t for item in EVAL for t in item["turns"])
    assert any("а" <= c <= "я" for c in text) and any("\u10d0" <= c <= "\u10ff" for c in text)


def test_evaluation_set_decisions(matcher: Matcher) -> None:
    results = [(item, assess(turns_from_texts(item["turns"], matcher))) for item in EVAL]
    handoff_right = [item for item, d in results if d.handoff == item["handoff"]]
    expected_handoffs = [(item, d) for item, d in results if item["handoff"]]
    reason_right = [item for item, d in expected_handoffs if (d.reason, d.at_turn) == (item["reason"], item["at_turn"])]
    wrong = [
        (item["turns"], item["reason"], d.reason, d.at_turn) for item, d in results if d.handoff != item["handoff"]
    ]
    assert len(handoff_right) >= 0.9 * len(EVAL), wrong
    assert len(reason_right) >= 0.85 * len(expected_handoffs), [
        (item["turns"], item["reason"], item["at_turn"], d.reason, d.at_turn)
        for item, d in expected_handoffs
        if (d.reason, d.at_turn) != (item["reason"], item["at_turn"])
    ]


# --- the command line ----------------------------------------------------------------------


def run_cli(stdin: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot.frustration", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_cli_writes_one_decision_per_conversation_with_exactly_the_contract_keys() -> None:
    lines = [
        {"turns": ["How do I pay my bill?", "thanks!"]},
        {"turns": ["позовите оператора"]},
        {"turns": ["How do I update my card details?", "that didn't help"]},
    ]
    result = run_cli("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n\n")
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(set(o) == {"handoff", "at_turn", "reason", "scores"} for o in out)
    assert out[0] == {"handoff": False, "at_turn": None, "reason": None, "scores": [0.0, 0.0]}
    assert (out[1]["handoff"], out[1]["at_turn"], out[1]["reason"]) == (True, 1, "asked_for_human")
    assert (out[2]["at_turn"], out[2]["reason"], len(out[2]["scores"])) == (2, "not_helped", 2)


def test_cli_reports_a_malformed_line_and_carries_on() -> None:
    stdin = "\n".join(
        [
            '{"turns": ["agent please"]}',
            "{not json",
            "",
            '{"messages": ["hi"]}',
            '{"turns": ["hi", 42]}',
            '["hi"]',
            '{"turns": ["hi"]}',
        ]
    )
    result = run_cli(stdin + "\n", "--kb", str(DEMO_KB))
    assert result.returncode == 1
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 6  # the blank line is skipped
    assert out[0]["reason"] == "asked_for_human"
    assert [set(o) for o in out[1:5]] == [{"error"}] * 4
    assert out[5] == {"handoff": False, "at_turn": None, "reason": None, "scores": [0.0]}
    for number in (2, 4, 5, 6):
        assert f"line {number}:" in result.stderr
    assert "line 1:" not in result.stderr and "line 7:" not in result.stderr


def test_cli_reads_the_threshold_from_the_environment() -> None:
    stdin = json.dumps({"turns": ["I'm fed up"]}) + "\n"
    assert json.loads(run_cli(stdin).stdout)["handoff"] is False
    lowered = run_cli(stdin, env={"FRUSTRATION_THRESHOLD": "0.4"})
    assert json.loads(lowered.stdout)["reason"] == "frustrated"
    bad = run_cli(stdin, env={"FRUSTRATION_MAX_FALLBACKS": "lots"})
    assert bad.returncode == 2 and "FRUSTRATION_MAX_FALLBACKS" in bad.stderr


# --- the tone model and the lexicon together ------------------------------------------------


class FixedTone:
    """A tone model that finds every message angry with one probability."""

    def __init__(self, anger: float) -> None:
        self.value = anger

    def anger(self, vector) -> float:
        return self.value


def test_an_angry_word_or_shouting_lowers_the_bar_for_the_tone_model() -> None:
    s = FrustrationSettings()
    between = (s.tone_with_words + s.tone_alone) / 2
    vector = [0.0] * 384
    plain = message_score("how do I pay my bill", s, vector, FixedTone(between))
    worded = message_score("you lot are crooks, this is ridiculous", s, vector, FixedTone(between))
    shouted = message_score("WHERE IS MY REFUND??? 6 WEEKS!!!", s, vector, FixedTone(between))
    assert plain[0] < s.threshold
    assert worded[0] >= s.threshold and "tone" in worded[1]
    assert shouted[0] >= s.threshold and "tone" in shouted[1]
    # Below the floor a calm message's tone adds nothing, so it cannot build up over turns.
    assert message_score("how do I pay my bill", s, vector, FixedTone(s.tone_floor - 0.01)) == (0.0, {})


@pytest.mark.parametrize(
    "text",
    [
        "budol kayo",
        "mga magnanakaw, kinaltasan nyo ako kahit cancelled na",
        "varalice!",
        "обични преваранти сте",
        "ворьё, списали деньги после расторжения",
        "кидалы, развели на деньги за роуминг которым я не пользовался",
        "это лохотрон, а не связь",
        "ქურდები ხართ, ფული დამიბრუნეთ",
        "zagļi, norakstījāt naudu pēc līguma laušanas",
    ],
)
def test_accusations_of_theft_hand_off_at_once_in_every_language(text: str) -> None:
    assert assess([Turn(text)]).reason == "frustrated", message_score(text)


@pytest.mark.parametrize(
    "text",
    [
        "paano po mag-cancel ng plan?",
        "na-charge po ako ng dalawang beses ngayong buwan, pa-check po",
        "kako da raskinem ugovor?",
        "наплаћено ми је два пута овог месеца, можете ли да проверите",
        "как расторгнуть договор?",
        "ამ თვეში ორჯერ ჩამომეჭრა თანხა, გთხოვთ შეამოწმოთ",
        "kā pārnest numuru pie cita operatora?",
    ],
)
def test_calm_questions_about_leaving_and_calm_reports_of_double_charges_do_not_hand_off(text: str) -> None:
    assert not assess([Turn(text)]).handoff, message_score(text)


@pytest.mark.parametrize(
    "text",
    [
        "кидалы",
        "задолбали, опять нет интернета",
        "jebote, opet pao internet",
        "који курац се дешава са мрежом",
        "lopovi",
    ],
)
def test_a_strong_word_hands_off_on_its_own_even_without_the_tone_model(text: str) -> None:
    assert assess([Turn(text, tone=False)]).reason == "frustrated", message_score(text)


@pytest.mark.parametrize(
    "text",
    [
        "мне пришло смс о выигрыше, это мошенники?",
        "sramota me je da pitam, kako se plaća račun?",
        "пљачка, украли ми телефон",
    ],
)
def test_words_a_calm_customer_may_use_are_not_strong(text: str) -> None:
    _, fired = lexical_score(text)
    assert fired.get("anger", 0) < FrustrationSettings().strong_word


@pytest.mark.parametrize(
    ("latin", "cyrillic"),
    [
        ("Bolje da sam ostao kod starog operatera, ovo je haos", "Боље да сам остао код старог оператера, ово је хаос"),
        ("Neću više da plaćam za ovakvu uslugu", "Нећу више да плаћам за овакву услугу"),
        ("Bravo, sjajno, opet nema signala, svaka čast", "Браво, сјајно, опет нема сигнала, свака част"),
    ],
)
def test_angry_serbian_hands_off_in_either_alphabet(latin: str, cyrillic: str) -> None:
    # The encoder reads Serbian better in Latin letters; read only in Cyrillic, these scored
    # 0.57-0.70 and stayed with the bot while their Latin twins were handed off.
    assert assess([Turn(latin)]).reason == "frustrated", message_score(latin)
    assert assess([Turn(cyrillic)]).reason == "frustrated", message_score(cyrillic)


def test_anger_around_a_didnt_help_phrase_still_counts() -> None:
    # "i dalje ne radi" (still doesn't work) has its own logic in assess(); the tone model's
    # anger used to be dropped whenever it appeared, so this stayed with the bot at 0.15.
    for text in (
        "Tri tehničara, tri različite priče, a internet i dalje ne radi",
        "Три техничара, три различите приче, а интернет и даље не ради",
    ):
        assert assess([Turn(text)]).reason == "frustrated", message_score(text)
    # Said on its own, the feedback is mild until it follows an answer.
    for text in ("i dalje ne radi", "still not working", "это не помогло"):
        assert not assess([Turn(text)]).handoff, message_score(text)


@pytest.mark.parametrize(
    "text",
    [
        # "Aren't you ashamed?": the negator is part of the reproach, so it used to cancel it.
        "Uzela sam slobodan dan i čekala majstora ceo dan. Nije vas sramota?",
        "Мастер не пришёл второй раз, я весь день сидела дома. Вам вообще не стыдно?",
        "Meistars atkal neatnāca. Vai jums nav kauna?",
        # "That is called theft", "liars", "see you in court": scored 0-0.5 before.
        "Platio sam odmah, a ni telefona ni para. To se zove krađa, jel vam jasno?",
        "Обећали сте повраћај новца за 5 дана. Прошло је 20. Лажови",
        "Ако ово не сторнирате одмах, видимо се на суду.",
        # Latvian and Tagalog anger the lexicon did not know.
        "blēži un afēristi, citu vārdu nav",
        "Kādus mēslus jūs tirgojat un vēl naudu plēšat",
        "Wala na ngang phone wala pang refund. Pagnanakaw tawag dyan!",
        "Sobra na kayo, ubos na pasensya ko sa inyo",
    ],
)
def test_reproaches_and_accusations_hand_off_at_once(text: str) -> None:
    assert assess([Turn(text)]).reason == "frustrated", message_score(text)


@pytest.mark.parametrize(
    "text",
    [
        # "I'm not complaining, just explain...": the tone model read the disclaimer as anger and
        # handed these off (5 of 175 calm messages in probes written for this).
        "Не хочу жаловаться, просто объясните, что за списание 99 рублей",
        "Ne žalim se, samo mi objasnite šta je ova stavka od 199 din na računu",
        "Nesūdzos, tikai paskaidrojiet, kas ir šis 2,99 EUR maksājums rēķinā",
        "საჩივარი არ მაქვს, უბრალოდ ამიხსენით 3 ლარი რისთვის ჩამომეჭრა",
        # Ashamed, but of oneself, and calm.
        "I'm not ashamed to ask: how do I read my bill?",
    ],
)
def test_a_calm_disclaimer_or_a_quoted_word_does_not_hand_off(text: str) -> None:
    assert not assess([Turn(text)]).handoff, message_score(text)


@pytest.mark.parametrize(
    "text",
    [
        "where do I pay my bill!!!",
        "как оплатить счёт???",
        "kako da platim račun!!!",
        "kā samaksāt rēķinu!!!",
        "paano magbayad ng bill!!!",
        "როგორ გადავიხადო ანგარიში!!!",
        "HOW DO I TOP UP",
        "КАК ПОПОЛНИТЬ БАЛАНС",
    ],
)
def test_an_urgent_plain_question_is_not_anger_in_any_language(text: str) -> None:
    # Shouting lowers the tone's bar (tone_with_shouting), but not for a question asking how or
    # where: the tone model reads "how do i top up" as 0.63 angry and "kā samaksāt rēķinu" as
    # 0.54, and shouted they were handed off. Rhetorical openers still count as shouting:
    assert not assess([Turn(text)]).handoff, message_score(text)
    for angry in ("HOW MANY TIMES DO I HAVE TO CALL YOU!!!", "WHY IS MY INTERNET DOWN AGAIN?!?!"):
        assert assess([Turn(angry)]).reason == "frustrated", message_score(angry)


@pytest.mark.parametrize(
    "text",
    [
        "Ordered a router on the 10th, paid at once. Three weeks later no router and no answer from "
        "anyone. Do you people even read your own emails?",
        "Заказал роутер десятого, оплатил сразу. Прошло три недели, ни роутера, ни ответа. Вы там "
        "вообще работаете или как?",
        "გადასახადი მეხუთე რიცხვში გადავიხადე, დღეს კი ინტერნეტი გამომირთეთ. საერთოდ იცით, რას აკეთებთ?",
    ],
)
def test_a_story_with_the_anger_in_its_last_words_hands_off(text: str) -> None:
    # Before the tone model learnt from stories, the whole message's meaning read as a calm
    # report (0-0.69) and these stayed with the bot.
    assert assess([Turn(text)]).reason == "frustrated", message_score(text)


@pytest.mark.parametrize(
    "text",
    [
        "მადლობა, თანხა დამიბრუნდა. ძალიან სწრაფად მოაგვარეთ.",
        "დიდი მადლობა, ოსტატი დროზე მოვიდა და ყველაფერი გააკეთა.",
        "Salamat po, pumasok na ang refund. Ang bilis po ng aksyon niyo.",
        "Paldies, nauda atgriezās, ļoti ātri atrisinājāt.",
        "Thank you, the refund arrived today. That was quick.",
        "Hvala, novac je vraćen, brzo ste to rešili.",
    ],
)
def test_thanks_for_a_solved_problem_is_not_anger_in_any_language(text: str) -> None:
    # The tone model once read Georgian, Tagalog and Latvian thanks as 0.59-0.76 angry, and
    # the first of these was handed to an agent as frustrated.
    score, fired = message_score(text)
    assert score < 0.2, fired


@pytest.mark.parametrize(
    "text",
    [
        "The operator said it would be fixed by Friday, and it still isn't. Can you check the ticket?",
        "Оператор сказал, что перерасчёт сделают автоматически, но в счёте его нет.",
        "ოპერატორმა მითხრა, რომ ხვალ მოვიდოდნენ, მაგრამ არავინ მოსულა.",
        "ფასდაკლებას დამპირდნენ, ოპერატორის სახელიც მახსოვს.",
    ],
)
def test_telling_what_an_operator_said_is_not_asking_for_one(text: str) -> None:
    # These were handed off as "asked for a person" because they name one.
    assert not asks_for_human(text)
    assert asks_for_human(text + " I want an operator now.")


def test_the_saved_tone_model_reads_as_scikit_learn_does_and_is_refused_for_other_inputs(tmp_path) -> None:
    # A restarted action server loads the fitted model instead of fitting it for seconds while
    # customers' messages wait; the arrays must give scikit-learn's own probabilities.
    from bot.frustration import TONE_TRAINING, ToneModel
    from bot.nlu.encoder import get_encoder

    rows = [json.loads(line) for line in TONE_TRAINING.read_text(encoding="utf-8").splitlines()]
    rows = [row for row in rows if row["label"] != "annoyed"][::12]
    texts, angry = [row["text"] for row in rows], [row["label"] == "angry" for row in rows]
    svc = ToneModel.fit_svc(texts, angry, get_encoder())
    model = ToneModel.from_svc(svc)
    probes = get_encoder().embed(["how do I pay my bill", "you are thieves", "ово је срамота", "paldies!"])
    expected = svc.predict_proba(probes.astype(np.float64))[:, 1]
    assert np.allclose([model.anger(v) for v in probes], expected, atol=1e-9)
    path = tmp_path / "tone.npz"
    model.save(path, "key-1")
    loaded = ToneModel.load(path, "key-1")
    assert loaded is not None and np.allclose([loaded.anger(v) for v in probes], expected, atol=1e-9)
    assert ToneModel.load(path, "key-2") is None  # other messages or settings: fitted again
    path.write_bytes(b"not a model")
    assert ToneModel.load(path, "key-1") is None
