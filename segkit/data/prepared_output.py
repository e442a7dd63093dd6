"""Writing a preparer's output so that it never deletes what it did not write and never half-exists.

A preparer (``segkit prepare``) writes into a staging folder beside the output; only when every file
is written are its entries swapped into the output folder. The output then holds a manifest,
``.segkit-prepared.json``, of every file the preparation wrote; a later ``overwrite`` replaces only
those, and refuses, before writing anything, when a file it would replace is not in the manifest.
A failure anywhere leaves the output as it was: empty or absent, or the previous complete output.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from segkit.data.names import shown_path
from segkit.errors import DataError
from segkit.manifests import files_under, listed_names

MANIFEST = ".segkit-prepared.json"
#: Written first into the staging folder: only a folder holding it is removed as a leftover.
STAGING_MARK = ".segkit-staging"


@contextmanager
def staged_output(output: Path, entries: Sequence[str], *, overwrite: bool, written_by: str) -> Iterator[Path]:
    """The staging folder to write ``entries`` (top-level names) into; swapped into ``output`` on success.

    Refuses a non-empty ``output`` unless ``overwrite``, and with ``overwrite`` any existing file
    under ``entries`` that the manifest does not list. Other files in ``output`` are kept.
    """
    _check_claimable(output, entries, overwrite)
    staging, trash = _sibling(output, "staging"), _sibling(output, "old")
    _clear_leftover(staging, trash)
    staging.mkdir(parents=True)
    (staging / STAGING_MARK).touch()
    try:
        yield staging
        (staging / STAGING_MARK).unlink()
        _write_manifest(staging, written_by)
        _swap_in(staging, output, [*entries, MANIFEST], trash)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _sibling(output: Path, role: str) -> Path:
    return output.with_name(f".{output.name}.segkit-prepare-{role}")


def _check_claimable(output: Path, entries: Sequence[str], overwrite: bool) -> None:
    """Refuse an output whose ``entries`` hold any file an earlier preparation did not write."""
    if output.exists() and not output.is_dir():
        raise DataError(f"{shown_path(output)}: is a file, not a folder; pass a new or empty output folder")
    if not output.is_dir() or not any(output.iterdir()):
        return
    if not overwrite:
        raise DataError(f"{shown_path(output)}: output folder is not empty; pass an empty folder, or "
                        "--option overwrite=true to replace earlier output there")
    written = _manifest_files(output)
    in_the_way = [
        path for name in [*entries, MANIFEST] for path in files_under(output / name)
        if path.relative_to(output).as_posix() not in written
    ]
    if in_the_way:
        more = f" (and {len(in_the_way) - 1} more)" if len(in_the_way) > 1 else ""
        raise DataError(f"{shown_path(in_the_way[0])}{more}: was not written by segkit prepare (its "
                        f"{MANIFEST} does not list it), so overwrite would lose it; move it out of "
                        f"{shown_path(output)}, or pass another output folder")


def prepared_files(output: Path) -> set[str]:
    """The files (relative, ``/``-separated) the manifest of ``output`` lists; empty without one."""
    return _manifest_files(output) - {MANIFEST}


def _manifest_files(output: Path) -> set[str]:
    path = output / MANIFEST
    if not path.is_file():
        return set()
    files = listed_names(path, "files")
    if files is None:
        raise DataError(f"{shown_path(path)}: is not a manifest segkit prepare can read; move the output "
                        "folder's contents away, or pass another output folder")
    return {MANIFEST, *files}


def _clear_leftover(staging: Path, trash: Path) -> None:
    """Remove a staging folder a killed run left (it holds our mark); refuse a half-swapped output."""
    if (staging / STAGING_MARK).is_file():
        shutil.rmtree(staging)
    for leftover in (staging, trash):
        if leftover.exists() or leftover.is_symlink():
            raise DataError(f"{shown_path(leftover)}: left by an interrupted segkit prepare; move its "
                            "contents back into the output folder or delete it, then run again")


def _write_manifest(staging: Path, written_by: str) -> None:
    files = [path.relative_to(staging).as_posix() for path in files_under(staging)]
    document = {"written_by": written_by, "files": files}
    (staging / MANIFEST).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def _swap_in(staging: Path, output: Path, entries: Sequence[str], trash: Path) -> None:
    """Move the old ``entries`` aside, the new ones in, then drop the old; undo the moves on failure."""
    if not output.exists():
        staging.rename(output)
        return
    aside: list[str] = []
    placed: list[str] = []
    try:
        for name in entries:
            if (output / name).exists() or (output / name).is_symlink():
                trash.mkdir(exist_ok=True)
                (output / name).rename(trash / name)
                aside.append(name)
        for name in entries:
            if (staging / name).exists():
                (staging / name).rename(output / name)
                placed.append(name)
    except BaseException:  # put the previous output back as it was
        for name in placed:
            (output / name).rename(staging / name)
        for name in aside:
            (trash / name).rename(output / name)
        with contextlib.suppress(OSError):
            trash.rmdir()  # empty again; never rmtree here: it may hold what could not be put back
        raise
    shutil.rmtree(trash, ignore_errors=True)
