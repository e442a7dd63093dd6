"""``segkit train``, ``segkit eval`` and ``segkit infer``: the project workflow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from segkit.cli.options import DebugOpt, FoldsOpt, FoldSubsetOpt, ProjectArg, QuietOpt, SetOpt, apply_debug
from segkit.data.images import image_size
from segkit.data.names import quoted
from segkit.errors import ExitCode
from segkit.plugins import get_registry
from segkit.project import Project, load_project
from segkit.report.console import console, figures_table, marked_up, print_notes
from segkit.report.history import metric_order
from segkit.run_folder import EVALUATION, EVALUATION_PER_IMAGE
from segkit.run_lock import run_folder_lock
from segkit.specs import CheckedSource
from segkit.run_record import check_trained_with, resume_command
from segkit.slides.summary import SUMMARY_NAME

if TYPE_CHECKING:
    from segkit.engine.infer import InferResult
    from segkit.engine.infer_slides import InferInterrupted, SlideProgress

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
        help="image or slide files, or folders of them, to segment (default: \\[infer] images)",
        show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="folder for the masks and slide outputs (default: \\[infer] output); overlays (and "
        "objects) of images go beside it", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="replace files in the output folders that segkit did not write")] = False,
    region: Annotated[Optional[str], typer.Option(
        "--region", help="segment only this part of the one slide given: x,y,w,h in level-0 pixels",
        show_default=False)] = None,
    microns_per_pixel: Annotated[Optional[float], typer.Option(
        "--microns-per-pixel", help="the slides' pixel size in µm, replacing their metadata's (for slides whose "
        "files hold none)", show_default=False)] = None,
    folds: FoldsOpt = False, fold_subset: FoldSubsetOpt = None,
    slides: Annotated[Optional[Path], typer.Option(
        "--slides", help="a cohort: the folder of its slides or a list file (one slide per line), segmented one "
        "task per slide on a Dask cluster; writes cohort.csv", show_default=False)] = None,
    scheduler: Annotated[Optional[str], typer.Option(
        "--scheduler", help="where the cohort runs: local (default), a scheduler address tcp://host:8786, or "
        "slurm, pbs, lsf, sge (dask-jobqueue)", show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", help="worker processes of a local cluster, or jobs of a batch system (default 1)",
        show_default=False)] = None,
    set_: SetOpt = None, quiet: QuietOpt = False, debug: DebugOpt = False,
) -> None:
    """Segment images at their original size and whole slides in tiles; writes a mask and an overlay per
    image (and its nuclei into <out>_objects/ when the project has \\[instances]), and per slide a tissue
    PNG, a pyramidal OME-TIFF mask and a record, with slides.csv."""
    from segkit.engine.infer import infer as run_inference
    from segkit.engine.infer_plan import plan_infer
    from segkit.engine.infer_slides import InferInterrupted
    from segkit.engine.slide_plan import SlideOptions, parse_region
    from segkit.cv.ensemble import chosen_folds
    from segkit.cli.cohort_command import check_cohort_options, infer_cohort

    check_cohort_options(slides, images, scheduler, workers)
    loaded = check_trained_with(_load(project, set_, debug))
    ensemble = chosen_folds(loaded, folds, fold_subset)
    options = SlideOptions(microns_per_pixel, parse_region(region) if region is not None else None,
                           None if ensemble is None else tuple(ensemble))
    if slides is not None:
        return infer_cohort(loaded, slides, out, overwrite, options, scheduler, workers, quiet)
    # every check before TensorFlow and any write
    plan = plan_infer(loaded, images or [], out, overwrite, slide_options=options)
    print_notes(plan.notes, quiet)
    try:
        with run_folder_lock(loaded.output_dir, "infer", _note_line, required=False):
            result = _run_with_bars(lambda progress: run_inference(loaded, plan, progress, ensemble),
                                    quiet or all(slide.done for slide in plan.slides))
    except InferInterrupted as interrupted:
        console.print(_interrupted_line(interrupted, len(plan.slides)), markup=False, soft_wrap=True)
        raise typer.Exit(ExitCode.INTERRUPTED if interrupted.signal_name == "SIGINT" else ExitCode.TERMINATED) from None
    _print_infer_result(result)


def _run_with_bars(run: Callable[[SlideProgress | None], InferResult], without: bool) -> InferResult:
    """``run`` given the slide bars' callback, or none ``without`` bars (``--quiet``, or no slide to segment)."""
    from segkit.report.slide_progress import SlideBars

    if without:
        return run(None)
    with SlideBars(console) as bars:
        return run(bars.update)


def _interrupted_line(interrupted: InferInterrupted, slides: int) -> str:
    where = f" while segmenting {quoted(interrupted.slide)}" if interrupted.slide is not None else ""
    kept = (f"; {interrupted.slides_done} of {slides} slide(s) were finished and are kept, the unfinished one "
            "keeps its last checkpoint" if interrupted.slide is not None else "")
    return (f"interrupted by {interrupted.signal_name}{where}{kept}; no output is left half-written: run the same "
            "command again to continue (finished slides are skipped, the unfinished one resumes)")


def _print_infer_result(result: InferResult) -> None:
    if result.replaced:
        console.print(f"replaced {len(result.replaced)} file(s) segkit had not written (--overwrite): "
                      + ", ".join(quoted(path) for path in result.replaced), markup=False, soft_wrap=True)
    if result.count or result.slides is None:
        objects = f"; {result.nuclei} nuclei → {result.objects}" if result.objects is not None else ""
        console.print(f"{result.count} masks → {result.masks}; overlays → {result.overlays}{objects}", markup=False,
                      soft_wrap=True)
    if result.slides is not None:
        slides = result.slides
        skipped = f" ({slides.skipped} already done, skipped)" if slides.skipped else ""
        nuclei = f", {slides.nuclei} nuclei" if slides.nuclei else ""
        console.print(f"{len(slides.rows)} slide(s){skipped} → {result.masks}{nuclei}; table → "
                      f"{result.masks / SUMMARY_NAME}", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("eval")(evaluate)
    app.command("infer")(infer)
