"""Shared fixtures: tiny generated datasets, project files, the real-data path and a clean registry."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from segkit.plugins import get_registry
from tiny_data import write_tiny_project

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """``../shared/data/<name>``; skipped when absent, except under CI=true where it must exist."""
    path = SHARED_DATA / name
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing but CI=true requires the shared data")
        pytest.skip(f"{path} is absent (the shared real data is not next to this checkout)")
    return path


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # setenv first: monkeypatch then restores the variable's absence, even when a CLI command under
    # test sets it in os.environ itself (--disable-plugin, --debug do)
    for name in ("SEGKIT_DISABLE_PLUGINS", "SEGKIT_DEBUG"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    get_registry.cache_clear()
    yield
    get_registry.cache_clear()


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    return write_tiny_project(tmp_path)
