"""``segkit train``: fit the project's model and leave the run folder a person expects."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from segkit.durable import disk_error
from segkit.engine import components
from segkit.engine.distribute import writes_run_folder
from segkit.engine.model_checks import check_model
from segkit.engine.pipeline_settings import pipeline_settings
from segkit.engine.runtime import (
    configure_precision, deterministic_for, import_tensorflow, jit_setting, seed_everything,
)
from segkit.errors import DataError, RunStateError
from segkit.plugins import Registry
from segkit.project import Project
from segkit.report.console import print_notes
from segkit.run_folder import BEST_MODEL, EVAL_DIR, RESOLVED_PROJECT, TENSORBOARD_DIR, claimed_run_folder
from segkit.run_record import check_resumable
from segkit.run_state import completed_epochs, read_state
from segkit.specs import NotedSource
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


def _data(project: Project, registry: Registry, first_epoch: int) -> tuple[Any, Any, Any, int]:
    from segkit.data.pipeline import make_dataset, make_training_dataset

    source = components.open_dataset(project, registry)
    train_pairs, valid_pairs = source.pairs("train"), source.pairs("valid")
    if not train_pairs or not valid_pairs:
        raise DataError("training needs image/mask pairs in both the train and the valid split")
    train_data, steps = make_training_dataset(source, train_pairs, pipeline_settings(project, True, source),
                                              first_epoch, project.train.epochs)
    valid_data = make_dataset(source, valid_pairs, pipeline_settings(project, False, source), "valid")
    return source, train_data, valid_data, steps


def _callbacks(project: Project, registry: Registry, console: Console | None, flag: Any,
               restored: dict[str, Any] | None, first_epoch: int) -> list[Any]:
    import keras

    from segkit.engine.resume import BestCheckpoint, EpochCheckpoint
    from segkit.report.keras_callbacks import HistoryWriter, RichProgress

    train, output = project.train, project.output_dir
    # by role, so that a resume with early stopping switched on or off restores the others
    stateful: dict[str, Any] = {"best": BestCheckpoint(output / BEST_MODEL, output)}
    if train.reducer.patience > 0:
        stateful["reducer"] = keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=train.reducer.factor, patience=train.reducer.patience)
    if train.patience > 0:
        stateful["early_stopping"] = keras.callbacks.EarlyStopping(monitor="val_loss", patience=train.patience)
    callbacks = [*stateful.values(), *components.build_plugin_callbacks(project, registry)]
    if project.optimizer.ema_momentum is not None:  # first: the checkpoints after it save the averages
        from segkit.engine.averaged_weights import SwapAveragedWeights

        callbacks.insert(0, SwapAveragedWeights(resumed=restored is not None))
    if train.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(output / TENSORBOARD_DIR)))
    rows = HistoryWriter.existing_rows(output / EVAL_DIR)[:first_epoch] if restored else []
    callbacks += [HistoryWriter(output / EVAL_DIR, rows), EpochCheckpoint(output, stateful, flag, restored)]
    if console is not None:
        callbacks.append(RichProgress(console, train.epochs, first_epoch))
    return callbacks


def train(project: Project, registry: Registry, console: Console | None, *, overwrite: bool = False,
          resume: bool = False, progress: bool = True) -> TrainResult:
    """Fit, checkpointing the best validation loss and every epoch; returns what the summary shows.

    ``console`` gets the one-line announcements (strategy, replicas); the progress bars only
    when ``progress``. Every check that needs no TensorFlow runs before the run folder is touched,
    and a run that stops before its first checkpoint leaves the folder as it found it (see
    :func:`segkit.run_folder.claimed_run_folder`).
    """
    check_model(project, registry)
    if resume:  # a changed project or a damaged state is refused before TensorFlow loads
        check_resumable(project)
    if not writes_run_folder(project.train.strategy):  # a worker that trains in a temporary folder
        return _train_placed_somewhere(project, registry, console, resume, progress)
    with claimed_run_folder(project.output_dir, overwrite, resume, _notes_to(console)):
        return _train_placed_somewhere(project, registry, console, resume, progress)


def _notes_to(console: Console | None) -> Callable[[str], None]:
    """The run folder's notes as the CLI prints every note; none for a caller without a console."""
    return (lambda text: print_notes([text], to=console)) if console is not None else (lambda text: None)


def _train_placed_somewhere(project: Project, registry: Registry, console: Console | None, resume: bool,
                            progress: bool) -> TrainResult:
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
            mapped = disk_error(exc, project.output_dir)
            if mapped is None:
                raise
            raise mapped from None
    return _result(history, source, flag.signal_name, completed_epochs(project.output_dir), model)


def _fit_function(model: Any, project: Project, registry: Registry, placement: Any) -> Any:
    """``model.fit``, or the strategy.run loop where Keras's fit cannot run (multi-worker); either
    stops at the first loss that is not finite, before any other callback sees that epoch's end."""
    from segkit.engine.loss_guard import StopOnNonFiniteLoss

    guard = StopOnNonFiniteLoss(str(project.source))
    if placement.multi_worker:
        from segkit.engine.worker_loop import WorkerLoop

        loop = WorkerLoop(placement.strategy, model, components.build_loss(project, registry),
                          components.build_metrics(project, registry), components.build_metrics(project, registry))

        def fit_loop(train_data: Any, valid_data: Any, *, callbacks: list[Any], **kwargs: Any) -> dict[str, list[float]]:
            return loop.fit(train_data, valid_data, callbacks=[guard, *callbacks], **kwargs)

        return fit_loop

    def fit(train_data: Any, valid_data: Any, *, callbacks: list[Any], **kwargs: Any) -> dict[str, list[float]]:
        return model.fit(train_data, validation_data=valid_data, verbose=0, callbacks=[guard, *callbacks],
                         **kwargs).history

    return fit


def _result(history: dict[str, list[float]], source: Any, interrupted: str, completed: int, model: Any) -> TrainResult:
    logs = {k: float(v[-1]) for k, v in history.items() if v}
    notes = list(source.notes()) if isinstance(source, NotedSource) else []
    best = float(min(history["val_loss"])) if history.get("val_loss") else float("nan")
    return TrainResult(len(history.get("loss", [])), best, logs, notes, interrupted, completed,
                       weights_digest(model))


def weights_digest(model: Any) -> str:
    """SHA-256 of every weight, in order: equal on every worker of a correct distributed run."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()
