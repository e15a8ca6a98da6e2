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


def faq_examples(kb: KnowledgeBase) -> list[str]:
    """Every phrasing once, in KB order, cleaned of Rasa's entity-annotation syntax."""
    seen: set[str] = set()
    out: list[str] = []
    for entry in kb.entries:
        for _, text in entry.variants():
            example = " ".join(_ANNOTATION.sub(" ", text).split())
            if example and example.casefold() not in seen:
                seen.add(example.casefold())
                out.append(example)
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
