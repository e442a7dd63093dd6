"""``segkit train``, ``segkit eval`` and ``segkit infer``: the project workflow."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from segkit.cli.options import DebugOpt, FoldsOpt, FoldSubsetOpt, ProjectArg, QuietOpt, SetOpt, apply_debug
from segkit.data.images import image_size
from segkit.errors import ExitCode
from segkit.plugins import get_registry
from segkit.project import Project, load_project
from segkit.report.console import console, figures_table, marked_up, print_notes
from segkit.report.history import metric_order
from segkit.run_folder import EVALUATION, EVALUATION_PER_IMAGE
from segkit.run_lock import run_folder_lock
from segkit.specs import CheckedSource
from segkit.run_record import check_trained_with, resume_command

if TYPE_CHECKING:
    from segkit.engine.train import TrainResult


def _load(project: ProjectArg, overrides: list[str] | None, debug: bool) -> Project:
    apply_debug(debug)
    loaded = load_project(project, overrides or [], get_registry())
    print_notes(loaded.notes)
    return loaded


def _check_data(project: Project, splits: tuple[str, ...]) -> None:
    """Check the header of every file of ``splits`` before anything is written or TensorFlow loads.

    A bad file found here costs a second and leaves the output folder as it was (``--overwrite``
    has not cleared it yet); found inside tf.data it would cost the import and a partial epoch.
    Dataset sources that are no ``CheckedSource`` (no ``check`` method) are trusted as they are.
    """
    from segkit.engine.components import open_dataset

    source = open_dataset(project, get_registry())
    if isinstance(source, CheckedSource):
        for split in splits:
            source.check(split)


def _test_squash_note(project: Project) -> str | None:
    from segkit.engine.components import open_dataset
    from segkit.engine.infer_plan import squash_note

    images = [pair.image for pair in open_dataset(project, get_registry()).pairs("test")]
    return squash_note(project, [(path, image_size(path)) for path in images])


def _note_line(text: str) -> None:
    print_notes([text])


def train(
    project: ProjectArg, set_: SetOpt = None, quiet: QuietOpt = False, debug: DebugOpt = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an earlier run in the output folder")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="continue an interrupted run from its last epoch")] = False,
    folds: Annotated[Optional[int], typer.Option(
        "--folds", help="cross-validate in K grouped folds (sets \\[cv] folds)", show_default=False)] = None,
    fold: Annotated[Optional[int], typer.Option(
        "--fold", help="train only this fold (0 .. K-1) of the cross-validation", show_default=False)] = None,
) -> None:
    """Train the project's model; writes checkpoints, histories and plots into the output folder."""
    from segkit.engine.model_checks import check_model
    from segkit.engine.train import train as run_training

    overrides = [*(set_ or []), *([f"cv.folds={folds}"] if folds is not None else [])]
    loaded = _load(project, overrides, debug)
    check_model(loaded, get_registry())  # before the announcement; the engine checks again for its own callers
    if loaded.cv.folds is not None or fold is not None:
        from segkit.cli.cv_commands import train_cross_validation

        return train_cross_validation(loaded, project, overrides, fold, overwrite=overwrite, resume=resume,
                                      quiet=quiet)
    _check_data(loaded, ("train", "valid"))
    console.print(marked_up("training [bold]{}[/] → {}", loaded.name, loaded.output_dir), markup=True, soft_wrap=True)
    result = run_training(loaded, get_registry(), console, overwrite=overwrite, resume=resume, progress=not quiet)
    report_training(result, resume_command(project, set_))


def report_training(result: TrainResult, resume_with: str) -> None:
    """The notes, then the interruption (exit 130/143) or the last epoch's figures and the weights' digest."""
    print_notes(result.notes)
    if result.interrupted:
        done = result.completed_epochs
        kept = (f"the checkpoint of epoch {done} is kept. Resume with: {resume_with}" if done
                else "no epoch had finished, so there is nothing to resume; start again")
        console.print(f"interrupted by {result.interrupted} after {done} complete epoch(s); {kept}", markup=False)
        raise typer.Exit(ExitCode.INTERRUPTED if result.interrupted == "SIGINT" else ExitCode.TERMINATED)
    logs = result.last_logs
    summary = {"epochs run": float(result.epochs_run), "best val_loss": result.best_val_loss,
               **{k: logs[k] for k in sorted(logs, key=metric_order)}}
    console.print(figures_table("last epoch", summary))
    console.print(f"weights sha256: {result.weights_sha256}", markup=False)


def evaluate(project: ProjectArg, set_: SetOpt = None, quiet: QuietOpt = False, debug: DebugOpt = False,
             folds: Annotated[bool, typer.Option(
                 "--folds", help="evaluate each fold of the cross-validation on its held-out images; writes "
                 "cv_summary.csv and cv_summary.png")] = False,
             ensemble: Annotated[bool, typer.Option(
                 "--ensemble", help="evaluate the ensemble of the fold models on test images no fold saw; writes "
                 "into <output_dir>/ensemble/")] = False, fold_subset: FoldSubsetOpt = None) -> None:
    """Evaluate the best model on the test split; writes evaluation.csv and evaluation_per_image.csv."""
    from segkit.cv.ensemble import ENSEMBLE_DIR, FoldChoiceError, check_unseen_test, chosen_folds
    from segkit.engine.evaluate import run_evaluation

    if folds and (ensemble or fold_subset is not None):
        raise FoldChoiceError("--folds: scores each fold on its own held-out images; --ensemble (and --fold-subset) "
                              "score the ensemble on other images: give one of them")
    if folds:
        from segkit.cli.cv_commands import evaluate_cross_validation

        return evaluate_cross_validation(_load(project, set_, debug))
    loaded = check_trained_with(_load(project, set_, debug))
    members = chosen_folds(loaded, ensemble, fold_subset, "--ensemble")
    if members is not None:
        check_unseen_test(loaded, get_registry())
    _check_data(loaded, ("test",))
    print_notes([_test_squash_note(loaded)], quiet)
    with run_folder_lock(loaded.output_dir, "eval", _note_line, required=False):
        result = run_evaluation(loaded, get_registry(), folds=members)
    of = "" if members is None else f", ensemble of folds {', '.join(map(str, members))}"
    console.print(figures_table(f"{loaded.name}: test split{of}" + (", pixels" if result.objects else ""), result.pixels))
    if result.objects:
        # said on lines of their own: a table's title wraps at the table's width
        console.print(f"objects, split level: counts summed over the {result.images} test images, then each figure",
                      markup=False, soft_wrap=True)
        console.print(figures_table("objects, split level", result.objects))
        console.print("objects, per-image mean: each figure of each image, averaged over the images where it is "
                      "defined (0/0 is undefined)", markup=False, soft_wrap=True)
        console.print(figures_table("objects, per-image mean", result.object_image_means))
    written = loaded.output_dir if members is None else loaded.output_dir / ENSEMBLE_DIR
    for name in (EVALUATION_PER_IMAGE, EVALUATION):
        console.print(f"written {written / name}", markup=False, soft_wrap=True)


def infer(
    project: ProjectArg,
    images: Annotated[Optional[list[Path]], typer.Argument(
        help="image files or folders of images to segment (default: \\[infer] images)", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="folder for the masks (default: \\[infer] output); overlays (and objects) go beside it",
        show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="replace files in the output folders that segkit did not write")] = False,
    folds: FoldsOpt = False, fold_subset: FoldSubsetOpt = None,
    set_: SetOpt = None, quiet: QuietOpt = False, debug: DebugOpt = False,
) -> None:
    """Segment images at their original size; writes a mask and an overlay per image (and its nuclei
    into <out>_objects/ when the project has \\[instances])."""
    from segkit.engine.infer import infer as run_inference
    from segkit.data.names import quoted
    from segkit.engine.infer_plan import plan_infer
    from segkit.cv.ensemble import chosen_folds

    loaded = check_trained_with(_load(project, set_, debug))
    ensemble = chosen_folds(loaded, folds, fold_subset)
    plan = plan_infer(loaded, images or [], out, overwrite)  # every check before TensorFlow and any write
    print_notes(plan.notes, quiet)
    with run_folder_lock(loaded.output_dir, "infer", _note_line, required=False):
        result = run_inference(loaded, plan, ensemble)
    if result.replaced:
        console.print(f"replaced {len(result.replaced)} file(s) segkit had not written (--overwrite): "
                      + ", ".join(quoted(path) for path in result.replaced), markup=False, soft_wrap=True)
    objects = f"; {result.nuclei} nuclei → {result.objects}" if result.objects is not None else ""
    console.print(f"{result.count} masks → {result.masks}; overlays → {result.overlays}{objects}", markup=False,
                  soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("eval")(evaluate)
    app.command("infer")(infer)
