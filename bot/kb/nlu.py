"""Generate Rasa NLU examples for the ``faq`` intent from the knowledge base.

The model learns *that* a message is a support question from every phrasing editors
wrote; the matcher then decides *which* entry. Generating the examples at training time
keeps the two from drifting apart: nobody copies questions into ``data/nlu`` by hand.
"""

from __future__ import annotations

import re

from bot.kb.model import KnowledgeBase

FAQ_INTENT = "faq"
_ANNOTATION = re.compile(r"[\[\]{}()]")


# Phrasings per entry and language that teach the ``faq`` intent (the first ones written:
# the question, then alternatives in order). The classifier weighs intents equally whatever
# their size, so the more faq examples, the less each counts: when the KB grew from about 60
# to about 87 phrasings an entry, "refund" and "wifi" became keyboard mashing and "roaming"
# a goodbye. The matcher still uses every phrasing; this also keeps training time from
# growing with the KB.
EXAMPLES_PER_LANGUAGE = 10


def faq_examples(kb: KnowledgeBase, per_language: int = EXAMPLES_PER_LANGUAGE) -> list[str]:
    """The first ``per_language`` phrasings of each entry in each language, once each, in KB
    order, cleaned of Rasa's entity-annotation syntax."""
    seen: set[str] = set()
    out: list[str] = []
    for entry in kb.entries:
        taken: dict[str, int] = {}
        for language, text in entry.variants():
            if taken.get(language, 0) >= per_language:
                continue
            example = " ".join(_ANNOTATION.sub(" ", text).split())
            if example and example.casefold() not in seen:
                seen.add(example.casefold())
                out.append(example)
                taken[language] = taken.get(language, 0) + 1
    return out


def nlu_yaml(kb: KnowledgeBase) -> str:
    lines = [
        "# Generated from data/faq by `python -m bot.kb nlu`; do not edit, edit the KB.",
        'version: "3.1"',
        "nlu:",
        f"- intent: {FAQ_INTENT}",
        "  examples: |",
    ]
    lines.extend(f"    - {example}" for example in faq_examples(kb))
    return "\n".join(lines) + "\n"
