"""The real data shared beside the checkout (``../shared/data``), for the tests that need it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """``../shared/data/<name>``; skipped when absent, except under CI=true where it must exist."""
    path = SHARED_DATA / name
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing but CI=true requires the shared data")
        pytest.skip(f"{path} is absent (the shared real data is not next to this checkout)")
    return path
