"""Where a run keeps its artefacts, relative to ``[project] output_dir``, and which of them are its own.

A run folder may be any folder, the dataset root included, so segkit never deletes what it did not
write: ``segkit train`` records the top-level entries its run owns in :data:`RUN_MARKER`, refuses a
folder whose run-named entries (``eval/``, ``models/`` ...) no run wrote, and on ``--overwrite`` moves
the earlier run aside into :data:`REPLACED` (a rename, on the same file system) instead of deleting it.
The earlier run is removed once the new one has checkpointed an epoch, and put back if it fails first.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from segkit.durable import remove_entry
from segkit.errors import RunStateError
from segkit.manifests import files_under, listed_names
from segkit.run_lock import LOCK, run_folder_lock
from segkit.toml_io import write_atomic

MODELS_DIR = "models"
BEST_MODEL = f"{MODELS_DIR}/best_model.keras"
EVAL_DIR = "eval"
#: the per-epoch histories in :data:`EVAL_DIR`, each a ``.csv`` and its plot, a ``.png``
TRAIN_LOSSES = "train_losses"
TRAIN_METRICS = "train_metrics"
RESOLVED_PROJECT = "project.resolved.toml"
EVALUATION = "evaluation.csv"
#: ``segkit eval``'s row per test image (pixel scores, and object scores with ``[instances]``)
EVALUATION_PER_IMAGE = "evaluation_per_image.csv"
#: what ``segkit eval`` writes at the top of the run folder: listed in the run's marker by
#: :func:`claim_entries`, so that ``train --overwrite`` takes them away with the model they scored
EVAL_FILES = (EVALUATION, EVALUATION_PER_IMAGE)
EPOCH_CHANGE_DIR = "epoch_change_infer"
TENSORBOARD_DIR = "tensorboard"
#: ``[train] cache = "disk"`` keeps decoded pairs here
CACHE_DIR = "cache"
#: where ``segkit infer`` writes when ``[infer] output`` is not set
INFER_DIR = "infer"
CHECKPOINT_DIR = "checkpoints"
#: every checkpoint file name in :data:`CHECKPOINT_DIR`, the current epoch's and older ones (fnmatch)
CHECKPOINT_FILES = "last*.keras"
#: the resumable state, written after an epoch's checkpoint and naming the ``checkpoints/last-NNNN.keras``
#: it belongs to: a run with it has something to resume and is worth keeping
STATE = f"{CHECKPOINT_DIR}/state.json"
#: which top-level entries the run in this folder owns (JSON)
RUN_MARKER = ".segkit-run.json"
#: the earlier run, moved aside while an ``--overwrite`` run starts
REPLACED = ".segkit-replaced"
#: the top-level entries ``segkit train`` itself writes
RUN_ENTRIES = (MODELS_DIR, CHECKPOINT_DIR, EVAL_DIR, EPOCH_CHANGE_DIR, TENSORBOARD_DIR, CACHE_DIR, RESOLVED_PROJECT)
#: every file segkit train wrote under each entry before runs had a marker (fnmatch, from the run
#: folder): an unmarked folder holding only these, and the resolved project, is taken for a run
LEGACY_FILES = {
    MODELS_DIR: (BEST_MODEL, f"{MODELS_DIR}/.*.tmp*"),
    CHECKPOINT_DIR: (f"{CHECKPOINT_DIR}/last.keras", f"{CHECKPOINT_DIR}/last-[0-9][0-9][0-9][0-9]*.keras", STATE,
                     f"{CHECKPOINT_DIR}/.*.tmp*"),
    EVAL_DIR: tuple(f"{EVAL_DIR}/{stem}{ext}" for stem in (TRAIN_LOSSES, TRAIN_METRICS, f".{TRAIN_LOSSES}",
                                                            f".{TRAIN_METRICS}")
                    for ext in (".csv", ".png", ".csv.tmp")),
    EPOCH_CHANGE_DIR: (f"{EPOCH_CHANGE_DIR}/epoch_[0-9][0-9][0-9]_*.png", f"{EPOCH_CHANGE_DIR}/.*"),
    TENSORBOARD_DIR: (f"{TENSORBOARD_DIR}/train/events.out.tfevents.*", f"{TENSORBOARD_DIR}/validation/events.out.tfevents.*"),
    CACHE_DIR: (f"{CACHE_DIR}/*-*x*-*/*.npz", f"{CACHE_DIR}/*-*x*-*/*.part"),
    RESOLVED_PROJECT: (RESOLVED_PROJECT,),
}
#: segkit's own bookkeeping in a run folder, never an entry of a run
INTERNAL = frozenset({RUN_MARKER, REPLACED, LOCK})

Note = Callable[[str], None]


@dataclass(frozen=True)
class RunClaim:
    """A run that has started in ``output``: what was there before it, and whether a marker was."""

    output: Path
    before: frozenset[str]
    had_marker: bool


def checkpoint_name(epoch: int) -> str:
    """The name in :data:`CHECKPOINT_DIR` of the checkpoint written after ``epoch``."""
    return f"last-{epoch:04d}.keras"


def has_checkpoint(output: Path) -> bool:
    return (output / STATE).is_file()


@contextmanager
def claimed_run_folder(output: Path, overwrite: bool, resume: bool, note: Note) -> Iterator[RunClaim]:
    """Claim ``output`` for a training run; on leaving, keep the new run or put the earlier one back.

    The new run is kept once the folder holds a checkpoint (a resumed run's included); a run that
    ends before that, by an error or an interrupt, leaves the folder as it found it. The folder's
    lock is held throughout, so a second train (or eval, infer) there is refused.
    """
    check_writable(output)
    with run_folder_lock(output, "train", note):
        claim = start_run(output, overwrite, resume, note)
        try:
            yield claim
        finally:
            finish_run(claim, note)


def start_run(output: Path, overwrite: bool, resume: bool, note: Note) -> RunClaim:
    """Refuse a folder that holds a run unless asked to, or that holds run-named entries of someone else's.

    ``output`` exists and is writable (:func:`check_writable`) and its lock is held.
    """
    _recover(output, note)
    owned = owned_entries(output)
    has_run = (output / BEST_MODEL).exists() or (output / CHECKPOINT_DIR).exists()
    if has_run and not (overwrite or resume):
        raise RunStateError(f"{output} already holds a run; pass --resume to continue it, --overwrite to "
                            "replace it, or set project.output_dir to a new folder")
    if overwrite and not resume and owned:
        _move_aside(output, [*owned, RUN_MARKER])
        owned = []
    had_marker = (output / RUN_MARKER).is_file()
    _write_marker(output, sorted({*RUN_ENTRIES, *owned}))
    return RunClaim(output, frozenset(_top_level(output)), had_marker)


def finish_run(claim: RunClaim, note: Note) -> None:
    """Keep an established run (and drop the one it replaced), or undo a run that never checkpointed.

    Undoing removes only the top-level entries that did not exist when the run started.
    """
    output = claim.output
    created = sorted(set(_top_level(output)) - claim.before)
    if has_checkpoint(output):
        _write_marker(output, sorted({*_marker_entries(output), *created}))
        shutil.rmtree(output / REPLACED, ignore_errors=True)
        return
    for name in created:
        remove_entry(output / name)
    if not claim.had_marker:
        remove_entry(output / RUN_MARKER)
    if (output / REPLACED).is_dir():
        _put_back(output)
        note(f"the run stopped before its first checkpoint; the earlier run in {output} is back as it was")


def owned_entries(output: Path) -> list[str]:
    """The top-level entries of the run in ``output``; a RunStateError for a run-named entry of someone else's."""
    present = [name for name in RUN_ENTRIES if (output / name).exists() or (output / name).is_symlink()]
    marked = _marker_entries(output) if (output / RUN_MARKER).is_file() else None
    for name in present:
        foreign = _foreign_file(output, name) if marked is None else (None if name in marked else name)
        if foreign is not None:
            raise RunStateError(
                f"{output}: holds {foreign}, which no segkit run wrote, so it does not look like a segkit run "
                "folder; nothing was changed (set project.output_dir to a folder of its own)")
    owned = present if marked is None else [n for n in marked if (output / n).exists() or (output / n).is_symlink()]
    return [name for name in owned if name not in INTERNAL]


def claim_entries(output: Path, names: Sequence[str]) -> None:
    """List ``names`` (top-level entries about to be written) among the run's own in its marker.

    Only a folder with a readable marker: an unmarked folder (an older segkit's run, or none) keeps
    what it owns as it was, and the entries stay where they are until something writes them again.
    """
    listed = listed_names(output / RUN_MARKER, "entries")
    if listed is not None and not set(names) <= set(listed):
        _write_marker(output, sorted({*_marker_entries(output), *names}))


def _foreign_file(output: Path, name: str) -> str | None:
    """In a folder without a marker: the first path under ``name`` the old run layout does not explain."""
    entry = output / name
    if not (output / RESOLVED_PROJECT).is_file():  # every run wrote it before its first epoch
        return f"{name}/" if entry.is_dir() else name
    for path in files_under(entry):
        relative = path.relative_to(output).as_posix()
        if path.is_symlink() or not path.is_file() or not any(fnmatchcase(relative, p) for p in LEGACY_FILES[name]):
            return relative
    return None


def check_writable(output: Path) -> None:
    """Create ``output`` and write a scratch file in it; any failure is one line naming the folder."""
    blocker = next((p for p in (output, *output.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        where = "is a file" if blocker == output else f"is a file, so {output} cannot be created"
        raise RunStateError(f"{blocker}: {where}; set project.output_dir to a folder")
    try:
        output.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=output):
            pass
    except OSError as exc:
        raise RunStateError(f"{output}: cannot write there ({exc.strerror or exc}); set project.output_dir "
                            "to a folder you can write to") from None


def _recover(output: Path, note: Note) -> None:
    """An earlier run left aside by a process that was killed: keep whichever of the two has a checkpoint."""
    if not (output / REPLACED).is_dir():
        return
    if has_checkpoint(output):
        shutil.rmtree(output / REPLACED)
        note(f"removed {output / REPLACED}: the run that replaced it had checkpointed before it was stopped")
        return
    for name in _marker_entries(output) if (output / RUN_MARKER).is_file() else ():
        if (output / name).exists() and (output / REPLACED / name).exists():
            remove_entry(output / name)
    remove_entry(output / RUN_MARKER)
    _put_back(output)
    note(f"put back the run in {output / REPLACED}: the run meant to replace it was stopped before its first "
         "checkpoint")


def _move_aside(output: Path, names: list[str]) -> None:
    aside = output / REPLACED
    aside.mkdir()
    for name in names:
        if (output / name).exists() or (output / name).is_symlink():
            os.rename(output / name, aside / name)


def _put_back(output: Path) -> None:
    aside = output / REPLACED
    for path in sorted(aside.iterdir()):
        remove_entry(output / path.name)
        os.rename(path, output / path.name)
    aside.rmdir()


def _top_level(output: Path) -> list[str]:
    return [p.name for p in output.iterdir() if p.name not in INTERNAL] if output.is_dir() else []


def _marker_entries(output: Path) -> list[str]:
    """The entries a marker lists; a marker that cannot be read owns only the run's own layout."""
    entries = listed_names(output / RUN_MARKER, "entries")
    if entries is None:
        return list(RUN_ENTRIES)
    valid = [e for e in entries if e and "/" not in e and e not in (".", "..")]
    return [e for e in valid if e not in INTERNAL]


def _write_marker(output: Path, entries: list[str]) -> None:
    marker = {"segkit_run": 1, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "entries": entries}
    write_atomic(output / RUN_MARKER, json.dumps(marker, indent=2) + "\n")
