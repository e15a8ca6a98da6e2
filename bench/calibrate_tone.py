"""Choose the tone model's settings by cross-validation on its training messages, and print them.

Reads only ``data/frustration/train.jsonl`` (never ``tests/data/frustration/heldout.jsonl``,
which measures). For each model setting (the SVM's ``C`` and kernel width ``gamma``), a model
is fitted on four fifths of the messages (annoyed ones left out; folds stratified by label and
language) and the other fifth is decided by ``assess`` as one-message conversations, with tone,
lexicon and requests for a person together; the table shows, for triples of
``tone_alone``/``tone_with_words``/``tone_with_shouting`` probabilities, the share of angry
messages handed off at once and of calm ones that would be, overall and per language (angry /
calm). Pick the row with the most angry handed off while calm stays at or under 2% (the
target), and set ``ToneModel.C``, ``ToneModel.GAMMA`` and those three settings.

    .venv/bin/python bench/calibrate_tone.py
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import frustration  # noqa: E402
from bot.frustration import TONE_TRAINING, FrustrationSettings, ToneModel, Turn, assess  # noqa: E402
from bot.nlu.encoder import get_encoder  # noqa: E402

MODELS = ((10.0, 2.0), (10.0, 3.0))  # (C, gamma)
THRESHOLDS = ((0.87, 0.6, 0.6), (0.87, 0.55, 0.5), (0.87, 0.4, 0.5), (0.85, 0.3, 0.5), (0.9, 0.3, 0.5))


def main() -> int:
    from sklearn.model_selection import StratifiedKFold

    rows = [json.loads(line) for line in TONE_TRAINING.read_text(encoding="utf-8").splitlines() if line.strip()]
    encoder = get_encoder()
    labels = np.array([row["label"] for row in rows])
    languages = np.array([row["lang"] for row in rows])
    texts = [row["text"] for row in rows]
    defaults = FrustrationSettings()
    strata = [f"{label}/{language}" for label, language in zip(labels, languages, strict=True)]
    folds = list(StratifiedKFold(5, shuffle=True, random_state=1).split(texts, strata))
    print(
        f"{len(rows)} messages: " + ", ".join(f"{k} {int((labels == k).sum())}" for k in ("angry", "annoyed", "calm"))
    )
    for c, gamma in MODELS:
        models = []
        for train, test in folds:
            keep = [i for i in train if labels[i] != "annoyed"]
            model = ToneModel.fit([texts[i] for i in keep], [labels[i] == "angry" for i in keep], encoder, c, gamma)
            models.append((test, model))
        for alone, with_words, with_shouting in THRESHOLDS:
            settings = replace(defaults, tone_alone=alone, tone_with_words=with_words, tone_with_shouting=with_shouting)
            hands_off = np.zeros(len(rows), dtype=bool)
            for test, model in models:
                frustration.tone_model = lambda model=model: model  # this fold's model, in the real decision
                for i in test:
                    hands_off[i] = assess([Turn(texts[i])], settings).handoff
            shares = {k: hands_off[labels == k].mean() for k in ("angry", "annoyed", "calm")}
            per_language = " ".join(
                f"{language} {hands_off[(languages == language) & (labels == 'angry')].mean():.0%}/"
                f"{hands_off[(languages == language) & (labels == 'calm')].mean():.1%}"
                for language in sorted(set(languages))
            )
            print(f"C={c:g} gamma={gamma:g} alone={alone} with_words={with_words} with_shouting={with_shouting}: "
                  f"angry {shares['angry']:.1%}  annoyed {shares['annoyed']:.1%}  calm {shares['calm']:.1%} "
                  f"| {per_language}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
