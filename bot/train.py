"""Train the Rasa model only when what it learns from changed.

The model file is named after a content hash of ``config.yml``, ``domain.yml``, the
stories, rules and NLU files, the NLU examples generated from the knowledge base, and the
Rasa version. Same inputs, same file: ``make run`` and ``make test`` skip training in
seconds, and an answer-only edit to the KB (which changes no NLU example) needs none.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from bot.kb.loader import load_dir
from bot.kb.nlu import nlu_yaml
from bot.processes import QUIET_RASA
from bot.settings import ROOT, load_settings

KEEP_MODELS = 3


def training_inputs(root: Path = ROOT) -> list[Path]:
    data = root / "data"
    files = [root / "config.yml", root / "domain.yml"]
    files += sorted(p for p in data.glob("*.yml"))
    files += sorted(p for p in (data / "nlu").rglob("*.yml"))
    return files


def model_hash(inputs: list[Path], generated: str) -> str:
    import rasa

    digest = hashlib.sha256(f"rasa {rasa.__version__}\n".encode())
    for path in inputs:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(generated.encode())
    return digest.hexdigest()[:16]


def model_path(models_dir: Path | None = None) -> tuple[Path, str, list[Path]]:
    """Where the model for the current inputs lives, the generated NLU, and the inputs."""
    settings = load_settings()
    kb, problems = load_dir(settings.kb_dir)
    if problems:
        raise SystemExit(
            "the knowledge base has problems; fix them before training:\n" + "\n".join(str(p) for p in problems)
        )
    generated = nlu_yaml(kb)
    inputs = training_inputs()
    digest = model_hash(inputs, generated)
    return (models_dir or ROOT / "models") / f"{digest}.tar.gz", generated, inputs


def train(models_dir: Path | None = None, quiet: bool = False) -> Path:
    path, generated, inputs = model_path(models_dir)
    if path.exists():
        if not quiet:
            print(f"model is up to date: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        return path
    settings = load_settings()
    gen_file = settings.var_dir / "generated" / "nlu_faq.yml"
    gen_file.parent.mkdir(parents=True, exist_ok=True)
    gen_file.write_text(generated, encoding="utf-8")
    data = [str(p) for p in inputs[2:]] + [str(gen_file)]
    command = [
        sys.executable, "-m", "rasa", "train",
        "--config", str(ROOT / "config.yml"),
        "--domain", str(ROOT / "domain.yml"),
        "--data", *data,
        "--out", str(path.parent),
        "--fixed-model-name", path.name.removesuffix(".tar.gz"),
    ]  # fmt: skip
    print(f"training the Rasa model ({len(generated.splitlines()) - 5} FAQ examples from the KB) ...", flush=True)
    started = time.monotonic()
    threads = os.environ.get("ENCODER_THREADS") or "2"  # nothing else runs during training
    env = {**os.environ, **QUIET_RASA, "ENCODER_THREADS": threads, "OMP_NUM_THREADS": threads}
    subprocess.run(command, check=True, cwd=ROOT, env=env)
    print(f"trained {path.name} in {time.monotonic() - started:.0f} s", flush=True)
    old = sorted(path.parent.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in old[KEEP_MODELS:]:
        stale.unlink(missing_ok=True)
    return path


def warm_vectors() -> int:
    """Embed what every process needs at start (the KB's phrasings, the tone model's and
    the guides' typed-answer examples) once, here, and save the vectors: the action server and the command-line
    tools then start in a second instead of embedding for minutes on a large KB."""
    from bot.frustration import tone_model
    from bot.kb.matcher import Matcher
    from bot.kb.typed_answers import classifier
    from bot.nlu.encoder import get_encoder, save_vectors

    settings = load_settings()
    kb, _ = load_dir(settings.kb_dir)
    started = time.monotonic()
    Matcher(kb, settings.match)
    tone_model()
    classifier(kb)
    computed = get_encoder().computed
    if computed:
        save_vectors()
        print(f"embedded {computed} new texts in {time.monotonic() - started:.0f} s", flush=True)
    return computed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.train", description=__doc__.splitlines()[0])
    parser.add_argument("--print-path", action="store_true", help="print the model path for the current inputs")
    args = parser.parse_args(argv)
    if args.print_path:
        print(model_path()[0])
        return 0
    train()
    os.environ.setdefault("ENCODER_THREADS", "2")  # nothing else runs during set-up
    warm_vectors()
    return 0


if __name__ == "__main__":
    sys.exit(main())
