"""Files a run cannot afford to lose half of: written beside their place, flushed, then renamed.

A ``kill -9`` or a full disk at any moment leaves either the old file or the new one, never a
torn one; the temporary file is removed on every exit Python sees. Write errors that are about
the disk (full, read-only, no permission) become one line naming the run folder.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from segkit.errors import RunStateError

#: errno values that say "this folder cannot take the file", not "segkit has a bug"
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})
NOT_WRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def temporary_for(path: Path) -> Path:
    """The hidden sibling ``path`` is written through (keeps the suffix: Keras checks it)."""
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


def disk_error(exc: BaseException, run_folder: Path) -> RunStateError | None:
    """One line for a full or unwritable disk under ``run_folder``; None for any other error."""
    if not isinstance(exc, OSError) or exc.errno not in NO_ROOM | NOT_WRITABLE:
        return None
    if exc.errno in NO_ROOM:
        what, todo = "the disk is full", "free space on that disk"
    else:
        what, todo = "it is not writable", "make it writable"
    return RunStateError(f"{run_folder}: cannot write the run there, {what} ({exc.strerror}); {todo} or set "
                         "project.output_dir to another folder (an interrupted run's last checkpoint is kept: "
                         "continue it with --resume)")


def replace_durably(path: Path, write: Callable[[Path], object], run_folder: Path) -> None:
    """Call ``write(temporary)``, flush it to the disk and rename it onto ``path``."""
    temporary = temporary_for(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(temporary)
        _flush(temporary)
        os.replace(temporary, path)
        _flush_folder(path.parent)
    except OSError as exc:
        mapped = disk_error(exc, run_folder)
        if mapped is None:
            raise
        raise mapped from None
    finally:
        temporary.unlink(missing_ok=True)


def write_text_durably(path: Path, text: str, run_folder: Path) -> None:
    replace_durably(path, lambda temporary: temporary.write_text(text, encoding="utf-8"), run_folder)


def remove_entry(path: Path) -> None:
    """Remove a file, a link (never what it points to) or a whole folder; nothing when absent."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


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
