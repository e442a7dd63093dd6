"""``segkit train``: fit the project's model and leave the run folder a person expects."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from segkit.data.pipeline import Augment, PipelineSettings
from segkit.durable import disk_error
from segkit.engine import components
from segkit.engine.runtime import (
    configure_precision, deterministic_for, import_tensorflow, jit_setting, seed_everything,
)
from segkit.errors import DataError, RunStateError
from segkit.plugins import Registry
from segkit.project import Project
from segkit.run_folder import BEST_MODEL, EVAL_DIR, RESOLVED_PROJECT
from segkit.run_record import check_resumable
from segkit.run_state import completed_epochs, read_state
from segkit.toml_io import write_atomic


@dataclass(frozen=True)
class TrainResult:
    epochs_run: int
    best_val_loss: float
    last_logs: dict[str, float]
    notes: list[str]
    interrupted: str = ""
    #: epochs whose checkpoint exists (what --resume continues after)
    completed_epochs: int = 0
    weights_sha256: str = ""


def prepare_run_folder(project: Project, overwrite: bool, resume: bool) -> None:
    """Refuse to clobber an earlier run unless asked to; ``--overwrite`` clears what training writes.

    Runs before TensorFlow is imported, so an output folder that cannot be written fails in a
    second instead of at the first checkpoint.
    """
    output = project.output_dir
    has_run = (output / BEST_MODEL).exists() or (output / "checkpoints").exists()
    if has_run and not (overwrite or resume):
        raise RunStateError(f"{output} already holds a run; pass --resume to continue it, --overwrite to "
                            "replace it, or set project.output_dir to a new folder")
    _check_writable(output)
    if overwrite and not resume:
        for name in ("models", "checkpoints", EVAL_DIR, "epoch_change_infer", "tensorboard", "cache"):
            shutil.rmtree(output / name, ignore_errors=True)


def _check_writable(output: Path) -> None:
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


def pipeline_settings(project: Project, training: bool) -> PipelineSettings:
    model, augment = project.model, project.augment
    return PipelineSettings(
        height=model.image_height, width=model.image_width, channels=model.image_channels,
        num_classes=project.classes.num_classes, batch_size=project.train.batch_size, seed=project.seed,
        with_weights=project.classes.ignore_color is not None or augment.crop, crop=augment.crop,
        crops_per_image=augment.crops_per_image, cache=project.train.cache,
        cache_dir=project.output_dir / "cache",
        # every transform of [augment] by its own name, so a new one needs no line here
        augment=Augment(**{f.name: getattr(augment, f.name) for f in fields(Augment)})
        if training and augment.enabled else None,
    )


def _data(project: Project, registry: Registry, first_epoch: int) -> tuple[Any, Any, Any, int]:
    from segkit.data.pipeline import make_dataset, make_training_dataset

    source = components.open_dataset(project, registry)
    train_pairs, valid_pairs = source.pairs("train"), source.pairs("valid")
    if not train_pairs or not valid_pairs:
        raise DataError("training needs image/mask pairs in both the train and the valid split")
    train_data, steps = make_training_dataset(source, train_pairs, pipeline_settings(project, True),
                                              first_epoch, project.train.epochs)
    valid_data = make_dataset(source, valid_pairs, pipeline_settings(project, False), "valid")
    return source, train_data, valid_data, steps


def _callbacks(project: Project, registry: Registry, console: Console | None, flag: Any,
               restored: dict[str, Any] | None, first_epoch: int) -> list[Any]:
    import keras

    from segkit.engine.resume import BestCheckpoint, EpochCheckpoint
    from segkit.report.keras_callbacks import HistoryWriter, RichProgress

    train, output = project.train, project.output_dir
    # by role, so that a resume with early stopping switched on or off restores the others
    stateful: dict[str, Any] = {"best": BestCheckpoint(output / BEST_MODEL, output)}
    if train.reducer_patience > 0:
        stateful["reducer"] = keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=train.reducer_factor, patience=train.reducer_patience)
    if train.patience > 0:
        stateful["early_stopping"] = keras.callbacks.EarlyStopping(monitor="val_loss", patience=train.patience)
    callbacks = [*stateful.values(), *components.build_plugin_callbacks(project, registry)]
    if project.optimizer.ema_momentum is not None:  # first: the checkpoints after it save the averages
        from segkit.engine.averaged_weights import SwapAveragedWeights

        callbacks.insert(0, SwapAveragedWeights(resumed=restored is not None))
    if train.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(output / "tensorboard")))
    rows = HistoryWriter.existing_rows(output / EVAL_DIR)[:first_epoch] if restored else []
    callbacks += [HistoryWriter(output / EVAL_DIR, rows), EpochCheckpoint(output, stateful, flag, restored)]
    if console is not None:
        callbacks.append(RichProgress(console, train.epochs, first_epoch))
    return callbacks


def train(project: Project, registry: Registry, console: Console | None, *, overwrite: bool = False,
          resume: bool = False, progress: bool = True) -> TrainResult:
    """Fit, checkpointing the best validation loss and every epoch; returns what the summary shows.

    ``console`` gets the one-line announcements (strategy, replicas); the progress bars only
    when ``progress``.
    """
    prepare_run_folder(project, overwrite, resume)
    if resume:  # a changed project or a damaged state is refused before TensorFlow loads
        check_resumable(project)
    import_tensorflow()
    from segkit.engine.distribute import place

    placement = place(project.train.strategy, str(project.source))
    if console is not None:
        console.print(placement.describe())
    if placement.multi_worker and resume:
        raise RunStateError("--resume is not supported with strategy 'multi_worker'; start the job again")
    if placement.chief:
        return _train_placed(project, registry, console if progress else None, placement, resume)
    # Workers other than the chief write nowhere the user sees: a temporary run folder, removed.
    with tempfile.TemporaryDirectory(prefix="segkit-worker-") as scratch:
        return _train_placed(replace(project, output_dir=Path(scratch)), registry, None, placement, False)


def _train_placed(project: Project, registry: Registry, console: Console | None, placement: Any,
                  resume: bool) -> TrainResult:
    from segkit.engine.resume import (
        InterruptFlag,
        TrainingInterrupted,
        interrupts_caught,
        restore_weights,
    )

    restored = read_state(project.output_dir, project.train.epochs) if resume else None
    first_epoch = int(restored["epoch"]) if restored else 0
    seed_everything(project.seed, deterministic_for(project.train.jit_compile))
    configure_precision(project.train.precision)
    source, train_data, valid_data, steps = _data(project, registry, first_epoch)
    write_atomic(project.output_dir / RESOLVED_PROJECT, project.resolved_toml())
    with placement.strategy.scope():
        model = components.build_model(project, registry)
        components.compile_model(model, project, registry, jit_compile=jit_setting(project.train.jit_compile))
        if restored:
            restore_weights(model, project.output_dir, restored)
        fit = _fit_function(model, project, registry, placement)
    flag = InterruptFlag()
    callbacks = _callbacks(project, registry, console, flag, restored, first_epoch)
    history: dict[str, list[float]] = {}
    with interrupts_caught(flag):
        try:
            if first_epoch < project.train.epochs:
                history = fit(train_data, valid_data, epochs=project.train.epochs, initial_epoch=first_epoch,
                              steps_per_epoch=steps, callbacks=callbacks)
        except TrainingInterrupted as stop:
            history = model.history.history if model.history is not None else {}
            flag.signal_name = stop.signal_name
        except OSError as exc:  # a full or read-only disk, wherever under the run folder it struck
            raise disk_error(exc, project.output_dir) or exc
    return _result(history, source, flag.signal_name, completed_epochs(project.output_dir), model)


def _fit_function(model: Any, project: Project, registry: Registry, placement: Any) -> Any:
    """``model.fit``, or the strategy.run loop where Keras's fit cannot run (multi-worker)."""
    if placement.multi_worker:
        from segkit.engine.worker_loop import WorkerLoop

        loop = WorkerLoop(placement.strategy, model, components.build_loss(project, registry),
                          components.build_metrics(project, registry), components.build_metrics(project, registry))
        return loop.fit

    def fit(train_data: Any, valid_data: Any, **kwargs: Any) -> dict[str, list[float]]:
        return model.fit(train_data, validation_data=valid_data, verbose=0, **kwargs).history

    return fit


def _result(history: dict[str, list[float]], source: Any, interrupted: str, completed: int, model: Any) -> TrainResult:
    logs = {k: float(v[-1]) for k, v in history.items() if v}
    notes = list(getattr(source, "notes", lambda: [])())
    best = float(min(history["val_loss"])) if history.get("val_loss") else float("nan")
    return TrainResult(len(history.get("loss", [])), best, logs, notes, interrupted, completed,
                       weights_digest(model))


def weights_digest(model: Any) -> str:
    """SHA-256 of every weight, in order: equal on every worker of a correct distributed run."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()
