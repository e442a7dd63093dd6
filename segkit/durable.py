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
from typing import Literal

from segkit.errors import RunStateError

#: errno values that say "this folder cannot take the file", not "segkit has a bug"
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})
NOT_WRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def temporary_for(path: Path) -> Path:
    """The hidden sibling ``path`` is written through (keeps the suffix: Keras checks it)."""
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


def disk_problem(exc: BaseException) -> Literal["full", "unwritable"] | None:
    """Whether ``exc`` says the disk is full or the folder unwritable (None: some other error)."""
    if not isinstance(exc, OSError) or exc.errno not in NO_ROOM | NOT_WRITABLE:
        return None
    return "full" if exc.errno in NO_ROOM else "unwritable"


def disk_error(exc: BaseException, run_folder: Path) -> RunStateError | None:
    """One line for a full or unwritable disk under ``run_folder``; None for any other error."""
    problem = disk_problem(exc)
    if problem is None:
        return None
    what, todo = (("the disk is full", "free space on that disk") if problem == "full"
                  else ("it is not writable", "make it writable"))
    return RunStateError(f"{run_folder}: cannot write the run there, {what} ({getattr(exc, 'strerror', '')}); "
                         f"{todo} or set project.output_dir to another folder (an interrupted run's last "
                         "checkpoint is kept: continue it with --resume)")


def replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """``write(temporary)`` beside ``path``, then rename it onto ``path``; the temporary file is
    removed on any failure, so ``path`` is either the old file or the whole new one."""
    temporary = temporary_for(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def replace_durably(path: Path, write: Callable[[Path], object], run_folder: Path,
                    disk_error_of: Callable[[BaseException], BaseException | None] | None = None) -> None:
    """:func:`replace_atomically`, the file and its folder flushed to the disk; a full or unwritable
    disk is one line (``disk_error_of(exc)``, by default :func:`disk_error` on ``run_folder``)."""
    def write_flushed(temporary: Path) -> None:
        write(temporary)
        _flush(temporary)

    try:
        replace_atomically(path, write_flushed)
        _flush_folder(path.parent)
    except OSError as exc:
        mapped = disk_error_of(exc) if disk_error_of is not None else disk_error(exc, run_folder)
        if mapped is None:
            raise
        raise mapped from None


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
