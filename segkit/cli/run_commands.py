"""``segkit train``, ``segkit eval`` and ``segkit infer``: the project workflow."""

from __future__ import annotations

from typing import Annotated

import typer

from segkit.cli.errors import mapped
from segkit.cli.options import DebugOpt, ProjectArg, QuietOpt, SetOpt, apply_debug
from segkit.plugins import get_registry
from segkit.project import Project, load_project
from segkit.report.console import console, figures_table
from segkit.report.history import metric_order


def _load(project: ProjectArg, overrides: list[str] | None, debug: bool) -> Project:
    apply_debug(debug)
    return load_project(project, overrides or [], get_registry())


@mapped
def train(
    project: ProjectArg, set_: SetOpt = None, quiet: QuietOpt = False, debug: DebugOpt = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an earlier run in the output folder")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="continue an interrupted run from its last epoch")] = False,
) -> None:
    """Train the project's model; writes checkpoints, histories and plots into the output folder."""
    from segkit.engine.train import train as run_training

    loaded = _load(project, set_, debug)
    console.print(f"training [bold]{loaded.name}[/] → {loaded.output_dir}", markup=True)
    result = run_training(loaded, get_registry(), None if quiet else console, overwrite=overwrite, resume=resume)
    for note in result.notes:
        console.print(f"note: {note}", markup=False, style="yellow")
    if result.interrupted:
        done = result.completed_epochs
        kept = (f"the checkpoint of epoch {done} is kept. Resume with: segkit train {project} --resume" if done
                else "no epoch had finished, so there is nothing to resume; start again")
        console.print(f"interrupted by {result.interrupted} after {done} complete epoch(s); {kept}", markup=False)
        raise typer.Exit(130 if result.interrupted == "SIGINT" else 143)
    logs = result.last_logs
    summary = {"epochs run": float(result.epochs_run), "best val_loss": result.best_val_loss,
               **{k: logs[k] for k in sorted(logs, key=metric_order)}}
    console.print(figures_table("last epoch", summary))


@mapped
def evaluate(project: ProjectArg, set_: SetOpt = None, quiet: QuietOpt = False, debug: DebugOpt = False) -> None:
    """Evaluate the best model on the test split; writes evaluation.csv."""
    from segkit.engine.evaluate import evaluate as run_evaluation

    loaded = _load(project, set_, debug)
    figures = run_evaluation(loaded, get_registry())
    console.print(figures_table(f"{loaded.name}: test split", figures))
    console.print(f"written {loaded.output_dir / 'evaluation.csv'}")


@mapped
def infer(project: ProjectArg, set_: SetOpt = None, quiet: QuietOpt = False, debug: DebugOpt = False) -> None:
    """Segment every image of the infer folder at its original size; writes masks and overlays."""
    from segkit.engine.infer import infer as run_inference

    loaded = _load(project, set_, debug)
    result = run_inference(loaded)
    console.print(f"{result.count} masks → {result.masks}; overlays → {result.overlays}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("eval")(evaluate)
    app.command("infer")(infer)
