"""``segkit train --folds K``: the plan, then each fold an ordinary training run in ``fold_k``.

With ``--resume`` a fold whose run finished is skipped, one with a checkpoint continues from its
last epoch and one never started starts; ``--fold N`` trains only fold N, so a cluster can train
the folds side by side (each in its own folder, under its own lock).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from segkit.cv.plan import FoldPlan, prepared_plan
from segkit.cv.view import fold_project
from segkit.errors import RunStateError
from segkit.plugins import Registry
from segkit.project import Project
from segkit.run_folder import BEST_MODEL, STATE, has_checkpoint
from segkit.specs import DatasetSource

if TYPE_CHECKING:
    from segkit.engine.train import TrainResult


@dataclass(frozen=True)
class FoldRun:
    """What training did with one fold: its result, or why it was skipped."""

    fold: int
    output_dir: Path
    #: the engine's ``TrainResult``; None for a fold skipped as finished
    result: TrainResult | None


def check_fold_choice(fold: int | None, folds: int) -> None:
    """``--fold N`` names one of the plan's folds (0 .. K-1)."""
    if fold is not None and not 0 <= fold < folds:
        raise RunStateError(f"--fold {fold}: the cross-validation has folds 0 to {folds - 1}; pass one of them")


def finished(output_dir: Path) -> bool:
    """The run in ``output_dir`` trained to its end (all epochs or early stopping) and kept a best model."""
    try:
        state = json.loads((output_dir / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("finished") is True and (output_dir / BEST_MODEL).is_file()


def planned(project: Project, source: DatasetSource, fold: int | None, overwrite: bool) -> FoldPlan:
    """The plan (read or written) with ``fold`` checked against it, before any fold trains.

    Only an ``--overwrite`` of every fold may replace a plan that no longer matches the data.
    """
    plan = prepared_plan(project, source, replace=overwrite and fold is None)
    check_fold_choice(fold, plan.count)
    return plan


def train_folds(project: Project, registry: Registry, plan: FoldPlan, train: Callable[..., TrainResult], *,
                only: int | None, overwrite: bool, resume: bool, announce: Callable[[str], None]) -> list[FoldRun]:
    """Train the plan's folds (or fold ``only``) with ``train`` (the engine's), stopping at an interrupt."""
    runs: list[FoldRun] = []
    for fold in range(plan.count) if only is None else [only]:
        folded = fold_project(project, plan, fold)
        if resume and finished(folded.output_dir):
            announce(f"fold {fold}: finished earlier, skipped ({folded.output_dir})")
            runs.append(FoldRun(fold, folded.output_dir, None))
            continue
        announce(f"fold {fold} of {plan.count}: {len(plan.folds[fold]['train'])} training, "
                 f"{len(plan.folds[fold]['valid'])} validation, {len(plan.folds[fold]['test'])} held-out images "
                 f"→ {folded.output_dir}")
        result = train(folded, registry, overwrite=overwrite, resume=resume and has_checkpoint(folded.output_dir))
        runs.append(FoldRun(fold, folded.output_dir, result))
        if result.interrupted:
            break
    return runs
