"""``segkit train --folds K [--fold N]`` and ``segkit eval --folds``: grouped cross-validation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from segkit.cli.run_commands import _check_data, _note_line, report_training
from segkit.cv.layout import fold_folder
from segkit.errors import RunStateError
from segkit.plugins import Registry, get_registry
from segkit.project import Project
from segkit.report.console import console, figures_table, marked_up
from segkit.run_lock import run_folder_lock
from segkit.run_record import resume_command

if TYPE_CHECKING:
    from segkit.engine.train import TrainResult


def train_cross_validation(loaded: Project, project_file: Path, overrides: list[str], fold: int | None, *,
                           overwrite: bool, resume: bool, quiet: bool) -> None:
    """Plan (or reuse the plan), then train the folds; every check before the first fold trains."""
    from segkit.cv.groups import source_splits
    from segkit.cv.train_folds import planned, train_folds
    from segkit.engine.components import open_dataset
    from segkit.engine.train import train as run_training

    if loaded.cv.folds is None:
        raise RunStateError(f"--fold {fold}: the project has no cross-validation; pass --folds K or set [cv] folds")
    registry = get_registry()
    source = open_dataset(loaded, registry)
    _check_data(loaded, tuple(source_splits(source)))
    plan = planned(loaded, source, fold, overwrite)
    console.print(marked_up("cross-validating [bold]{}[/] in {} folds → {}", loaded.name, plan.count,
                            loaded.output_dir), markup=True, soft_wrap=True)

    again = resume_command(project_file, overrides) + (f" --fold {fold}" if fold is not None else "")

    def train_one(folded: Project, registry: Registry, *, overwrite: bool, resume: bool) -> TrainResult:
        result = run_training(folded, registry, console, overwrite=overwrite, resume=resume, progress=not quiet)
        report_training(result, again)  # an interrupted fold exits here: the folds after it wait for --resume
        return result

    runs = train_folds(loaded, registry, plan, train_one, only=fold, overwrite=overwrite, resume=resume,
                       announce=_note_line)
    trained = [run.fold for run in runs]
    console.print(f"folds {', '.join(map(str, trained))} of {plan.count} trained; evaluate them with: "
                  f"segkit eval {project_file} --folds", markup=False, soft_wrap=True)


def evaluate_cross_validation(loaded: Project) -> None:
    """Every fold's best model on its held-out images, then the summary table and plot."""
    from segkit.cv.summary import SUMMARY, SUMMARY_PLOT, evaluate_folds, trained_plan

    plan = trained_plan(loaded)  # every fold trained, with the project's model keys, before TensorFlow loads
    with run_folder_lock(loaded.output_dir, "eval", _note_line, required=False):
        summary = evaluate_folds(loaded, get_registry(), plan)
    rows = {row["fold"]: row for row in summary.rows()}
    for name in ("mean", "sd", "pooled"):
        figures = {k: v for k, v in rows[name].items() if isinstance(v, float)}
        console.print(figures_table(f"{loaded.name}: {plan.count} folds, {name}", figures))
    for fold in range(plan.count):
        console.print(f"fold {fold}: {fold_folder(loaded.output_dir, fold)}", markup=False, soft_wrap=True)
    for name in (SUMMARY, SUMMARY_PLOT):
        console.print(f"written {loaded.output_dir / name}", markup=False, soft_wrap=True)
