from __future__ import annotations

from pathlib import Path

import pytest

from tests.stack import graph_api, redis_server, stack  # noqa: F401 - session fixtures for e2e and security tests

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start real servers are marked e2e, so ``make test-fast`` can skip them."""
    for item in items:
        path = str(item.fspath)
        if "/e2e/" in path or "/security/" in path:
            item.add_marker(pytest.mark.e2e)
