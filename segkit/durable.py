"""Files a run cannot afford to lose half of: written beside their place, flushed, then renamed.

A ``kill -9`` or a full disk at any moment leaves either the old file or the new one, never a
torn one; the temporary file is removed on every exit Python sees.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def temporary_for(path: Path) -> Path:
    """The hidden sibling ``path`` is written through (keeps the suffix: Keras checks it)."""
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


def replace_durably(path: Path, write: Callable[[Path], None], run_folder: Path) -> None:
    """Call ``write(temporary)``, flush it to the disk and rename it onto ``path``."""
    temporary = temporary_for(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(temporary)
        _flush(temporary)
        os.replace(temporary, path)
        _flush_folder(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_durably(path: Path, text: str, run_folder: Path) -> None:
    replace_durably(path, lambda temporary: temporary.write_text(text, encoding="utf-8"), run_folder)


def remove_temporaries(folder: Path) -> None:
    """Temporary files a killed process left in ``folder`` (a kill -9 runs no cleanup)."""
    for leftover in folder.glob(".*.tmp*") if folder.is_dir() else ():
        leftover.unlink(missing_ok=True)


def _flush(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def _flush_folder(folder: Path) -> None:
    # the rename itself is durable only once the folder's entry is on the disk
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
