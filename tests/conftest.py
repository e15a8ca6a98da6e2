from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO_KB = ROOT / "data" / "faq"


@pytest.fixture
def write_kb(tmp_path: Path):
    """Write ``{name: yaml_text}`` files into a fresh KB folder and return the folder."""

    def write(files: dict[str, str]) -> Path:
        folder = tmp_path / "faq"
        folder.mkdir(exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        return folder

    return write
