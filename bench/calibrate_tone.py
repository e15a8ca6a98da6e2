"""Choose the tone model's settings by cross-validation on its training messages, and print them.

Reads only ``data/frustration/train.jsonl`` (never ``tests/data/frustration/heldout.jsonl``,
which measures). For each regularisation strength ``C``, a model is fitted on four fifths of
the messages (annoyed ones left out) and the other fifth is decided by ``assess`` as
one-message conversations, with tone, lexicon and requests for a person together; the table
shows, for pairs of ``tone_alone``/``tone_with_words`` probabilities, the share of angry
messages handed off at once and of calm ones that would be. Pick the row with the most angry
handed off while calm stays under 2% (the target), and set ``ToneModel.C`` and those two settings.

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


def main() -> int:
    from sklearn.model_selection import StratifiedKFold

    rows = [json.loads(line) for line in TONE_TRAINING.read_text(encoding="utf-8").splitlines() if line.strip()]
    encoder = get_encoder()
    labels = np.array([row["label"] for row in rows])
    texts = [row["text"] for row in rows]
    defaults = FrustrationSettings()
    folds = list(StratifiedKFold(5, shuffle=True, random_state=1).split(texts, labels))
    print(
        f"{len(rows)} messages: " + ", ".join(f"{k} {int((labels == k).sum())}" for k in ("angry", "annoyed", "calm"))
    )
    for c in (100.0, 300.0):
        models = []
        for train, test in folds:
            keep = [i for i in train if labels[i] != "annoyed"]
            model = ToneModel.fit([texts[i] for i in keep], [labels[i] == "angry" for i in keep], encoder, c)
            models.append((test, model))
        for alone, with_words in ((0.7, 0.5), (0.8, 0.5), (0.9, 0.5), (0.9, 0.6), (0.93, 0.6), (0.95, 0.6)):
            settings = replace(defaults, tone_alone=alone, tone_with_words=with_words)
            hands_off = np.zeros(len(rows), dtype=bool)
            for test, model in models:
                frustration.tone_model = lambda model=model: model  # this fold's model, in the real decision
                for i in test:
                    hands_off[i] = assess([Turn(texts[i])], settings).handoff
            shares = {k: hands_off[labels == k].mean() for k in ("angry", "annoyed", "calm")}
            print(f"C={c:>5} tone_alone={alone} tone_with_words={with_words}: angry {shares['angry']:.1%}  "
                  f"annoyed {shares['annoyed']:.1%}  calm {shares['calm']:.1%}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
