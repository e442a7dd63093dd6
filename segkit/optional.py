"""Optional libraries segkit uses when they are installed, found without importing them."""

from __future__ import annotations

import importlib.util


def parquet_available() -> bool:
    """Whether tables get a Parquet copy (or, for a slide's nuclei, are Parquet): pyarrow is installed.

    Found without importing it (a second of start-up); a broken pyarrow shows when a table is written.
    """
    return importlib.util.find_spec("pyarrow") is not None
