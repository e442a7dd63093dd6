"""``segkit train``, ``segkit eval`` and ``segkit infer``: the project workflow."""

from __future__ import annotations

from typing import Annotated

import typer

from segkit.cli.errors import mapped
from segkit.cli.options import DebugOpt, ProjectArg, QuietOpt, SetOpt, apply_debug
from segkit.data.images import image_size
from segkit.data.pairing import list_images
from segkit.errors import ProjectError
from segkit.plugins import get_registry
from segkit.project import Project, load_project
from segkit.report.console import console, figures_table, marked_up, print_notes
from segkit.report.history import metric_order


def _load(project: ProjectArg, overrides: list[str] | None, debug: bool) -> Project:
    apply_debug(debug)
    loaded = load_project(project, overrides or [], get_registry())
    print_notes(loaded.notes)
    return loaded


def _check_data(project: Project, splits: tuple[str, ...]) -> None:
    """Check the header of every file of ``splits`` before anything is written or TensorFlow loads.

    A bad file found here costs a second and leaves the output folder as it was (``--overwrite``
    has not cleared it yet); found inside tf.data it would cost the import and a partial epoch.
    Dataset plugins without a ``check`` method are trusted as they are.
    """
    from segkit.engine.components import open_dataset

    check = getattr(open_dataset(project, get_registry()), "check", None)
    if check is not None:
        for split in splits:
            check(split)


def _check_infer_images(project: Project) -> None:
    """The infer folder exists, holds images, and each one's header reads; errors name the key."""
    folder = project.infer.images
    key, source = "infer.images", str(project.source)
    if folder is None:
        raise ProjectError(source, key, "is not set", "add it to [infer] or pass --set infer.images=FOLDER")
    if not folder.is_dir():
        what = f"{folder} is a file, not a folder" if folder.exists() else f"folder {folder} does not exist"
        raise ProjectError(source, key, what, "point it at the folder of images to segment")
    files = list_images(folder)
    if not files:
        raise ProjectError(source, key, f"{folder} holds no images (.png .jpg .jpeg .tif .tiff .bmp)",
                           "point it at the folder of images to segment")
    for path in files:
        image_size(path, verify=True)


@mapped
def train(
    project: ProjectArg, set_: SetOpt = None, quiet: QuietOpt = False, debug: DebugOpt = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an earlier run in the output folder")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="continue an interrupted run from its last epoch")] = False,
) -> None:
    """Train the project's model; writes checkpoints, histories and plots into the output folder."""
    from segkit.engine.train import train as run_training

    loaded = _load(project, set_, debug)
    _check_data(loaded, ("train", "valid"))
    console.print(marked_up("training [bold]{}[/] → {}", loaded.name, loaded.output_dir), markup=True, soft_wrap=True)
    result = run_training(loaded, get_registry(), console, overwrite=overwrite, resume=resume, progress=not quiet)
    print_notes(result.notes)
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
    console.print(f"weights sha256: {result.weights_sha256}", markup=False)


@mapped
def evaluate(project: ProjectArg, set_: SetOpt = None, quiet: QuietOpt = False, debug: DebugOpt = False) -> None:
    """Evaluate the best model on the test split; writes evaluation.csv."""
    from segkit.engine.evaluate import evaluate as run_evaluation

    loaded = _load(project, set_, debug)
    _check_data(loaded, ("test",))
    figures = run_evaluation(loaded, get_registry())
    console.print(figures_table(f"{loaded.name}: test split", figures))
    console.print(f"written {loaded.output_dir / 'evaluation.csv'}")


@mapped
def infer(project: ProjectArg, set_: SetOpt = None, quiet: QuietOpt = False, debug: DebugOpt = False) -> None:
    """Segment every image of the infer folder at its original size; writes masks and overlays."""
    from segkit.engine.infer import infer as run_inference

    loaded = _load(project, set_, debug)
    _check_infer_images(loaded)
    result = run_inference(loaded)
    console.print(f"{result.count} masks → {result.masks}; overlays → {result.overlays}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("eval")(evaluate)
    app.command("infer")(infer)
