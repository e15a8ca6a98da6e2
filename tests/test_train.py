"""The model is retrained only when what it learns from changes."""

from __future__ import annotations

from bot.kb import load
from bot.kb.nlu import EXAMPLES_PER_LANGUAGE, nlu_yaml
from bot.train import model_hash, training_inputs
from tests.conftest import DEMO_KB


def test_hash_changes_with_questions_but_not_with_answers() -> None:
    kb = load(DEMO_KB)
    inputs = training_inputs()
    base = model_hash(inputs, nlu_yaml(kb))
    assert model_hash(inputs, nlu_yaml(kb)) == base
    entry = kb.entries[0]
    reworded = type(kb).of([entry.__class__(**{**entry.__dict__, "answer": {"en": "new"}}), *kb.entries[1:]])
    assert model_hash(inputs, nlu_yaml(reworded)) == base
    asked = type(kb).of([entry.__class__(**{**entry.__dict__, "question": {"en": "brand new q"}}), *kb.entries[1:]])
    assert model_hash(inputs, nlu_yaml(asked)) != base


def test_generated_examples_cover_every_entry_and_language_without_annotation_syntax() -> None:
    kb = load(DEMO_KB)
    text = nlu_yaml(kb)
    assert "- intent: faq" in text
    examples = [line[6:] for line in text.splitlines() if line.startswith("    - ")]
    # The first EXAMPLES_PER_LANGUAGE phrasings of every entry in every language (fewer
    # only where two entries share one), and no more.
    wanted = sum(
        min(EXAMPLES_PER_LANGUAGE, sum(1 for lang, _ in e.variants() if lang == language))
        for e in kb.entries
        for language in {lang for lang, _ in e.variants()}
    )
    assert wanted * 0.95 <= len(examples) <= wanted
    assert len(examples) < sum(len(e.variants()) for e in kb.entries)  # the demo KB has more
    assert not any(ch in example for example in examples for ch in "[]{}")
