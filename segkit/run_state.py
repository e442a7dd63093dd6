"""``checkpoints/state.json``: what ``--resume`` continues from, read and checked without TensorFlow.

The state is the commit point of an epoch: the epoch's checkpoint ``last-NNNN.keras`` is written
first, then the state naming it, then the older checkpoint is removed. A kill between any two
steps leaves a state that names a complete checkpoint of the epoch it says.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from segkit.errors import RunStateError
from segkit.run_folder import CHECKPOINT_DIR, STATE, checkpoint_name

FIX = "restore the file, or train again with --overwrite"


def read_state(output_dir: Path, epochs: int) -> dict[str, Any]:
    """The checked state of an interrupted run of at most ``epochs`` epochs; one line if unusable."""
    path = output_dir / STATE
    if not path.exists():
        raise RunStateError(f"{output_dir}: no resumable checkpoint ({STATE}); "
                            "train without --resume")
    state = _parsed(path)
    epoch = state.get("epoch")
    if type(epoch) is not int or epoch < 1:
        raise RunStateError(f"{path}: epoch: expected a whole number of epochs >= 1, got {epoch!r} ({FIX})")
    if not isinstance(state.get("finished"), bool):
        raise RunStateError(f"{path}: finished: expected true or false, got {state.get('finished')!r} ({FIX})")
    if state["finished"]:
        raise RunStateError(f"{output_dir}: this run finished after epoch {epoch}; nothing to resume "
                            "(raise train.epochs in a new output folder, or --overwrite)")
    if epoch > epochs:
        raise RunStateError(f"{path}: epoch {epoch} is beyond train.epochs = {epochs} (raise train.epochs "
                            f"to at least {epoch} to continue, or {FIX})")
    _check_counters(path, state)
    _check_checkpoint(output_dir, path, state)
    return state


def checkpoint_path(output_dir: Path, state: dict[str, Any]) -> Path:
    return output_dir / CHECKPOINT_DIR / state["checkpoint"]


def completed_epochs(output_dir: Path) -> int:
    """Epochs with a checkpoint in ``output_dir`` (0 when none finished)."""
    try:
        epoch = json.loads((output_dir / STATE).read_text(encoding="utf-8"))["epoch"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return epoch if type(epoch) is int and epoch > 0 else 0


def _parsed(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:120]
        raise RunStateError(f"{path}: damaged, not JSON ({detail}); {FIX}") from None
    if not isinstance(state, dict):
        raise RunStateError(f"{path}: damaged, expected a JSON object, got {type(state).__name__}; {FIX}")
    return state


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _check_counters(path: Path, state: dict[str, Any]) -> None:
    callbacks = state.get("callbacks")
    if not isinstance(callbacks, dict) or not all(
            isinstance(c, dict) and all(_is_number(v) for v in c.values()) for c in callbacks.values()):
        raise RunStateError(f"{path}: callbacks: expected a table of the callbacks' numeric counters, "
                            f"got {callbacks!r:.80} ({FIX})")
    seeds = state.get("seed_states")
    if not isinstance(seeds, list) or not all(
            isinstance(s, list) and len(s) == 2 and all(type(v) is int for v in s) for s in seeds):
        raise RunStateError(f"{path}: seed_states: expected a list of [int, int] random states, "
                            f"got {seeds!r:.80} ({FIX})")


def _check_checkpoint(output_dir: Path, path: Path, state: dict[str, Any]) -> None:
    name, expected = state.get("checkpoint"), checkpoint_name(state["epoch"])
    if name != expected:  # also a state of an older segkit, which named no checkpoint
        raise RunStateError(f"{path}: checkpoint: epoch {state['epoch']} belongs with {expected!r}, "
                            f"the state names {name!r} ({FIX})")
    checkpoint = checkpoint_path(output_dir, state)
    if not checkpoint.is_file():
        raise RunStateError(f"{checkpoint}: missing, but {path} names it ({FIX})")
    if not zipfile.is_zipfile(checkpoint):
        raise RunStateError(f"{checkpoint}: is not a complete .keras file (damaged or truncated); {FIX}")
