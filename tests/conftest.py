"""Shared fixtures: the tiny project and a clean registry (helpers live in modules of their own)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from segkit.plugins import get_registry
from tiny_data import write_tiny_project

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

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
