"""Where a cross-validation keeps its folds: one output folder, ``fold_0`` … ``fold_{K-1}`` inside it.

Each fold folder is an ordinary run folder (checkpoints, histories, ``models/best_model.keras``),
so every command that takes a run takes a fold. The fold plan, ``folds.json`` beside them, is
written before the first fold trains and says which images each fold holds out.
"""

from __future__ import annotations

import re
from pathlib import Path

from segkit.run_folder import BEST_MODEL

#: the fold plan of a cross-validation, in its output folder
FOLD_PLAN = "folds.json"
_FOLD_NAME = re.compile(r"fold_(\d+)")


def fold_folder(output_dir: Path, fold: int) -> Path:
    """The run folder of fold ``fold`` (0-based) of the cross-validation in ``output_dir``."""
    if fold < 0:
        raise ValueError(f"folds count from 0, not {fold}")
    return output_dir / f"fold_{fold}"


def trained_folds(output_dir: Path) -> list[int]:
    """The folds in ``output_dir`` that have a best model, in order."""
    if not output_dir.is_dir():
        return []
    found = [int(match.group(1)) for entry in output_dir.iterdir()
             if (match := _FOLD_NAME.fullmatch(entry.name)) and (entry / BEST_MODEL).is_file()]
    return sorted(found)
