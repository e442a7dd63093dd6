"""``segkit train``: fit the project's model and leave the run folder a person expects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console

from segkit.engine import components
from segkit.engine.runtime import import_tensorflow, seed_everything
from segkit.errors import DataError, RunStateError
from segkit.plugins import Registry
from segkit.project import Project
from segkit.run_folder import BEST_MODEL, EVAL_DIR, RESOLVED_PROJECT
from segkit.toml_io import write_atomic


@dataclass(frozen=True)
class TrainResult:
    epochs_run: int
    best_val_loss: float
    last_logs: dict[str, float]
    notes: list[str]


def check_run_folder(project: Project, overwrite: bool) -> None:
    """Refuse to clobber an earlier run unless asked to."""
    if (project.output_dir / BEST_MODEL).exists() and not overwrite:
        raise RunStateError(
            f"{project.output_dir} already holds a trained run; pass --overwrite to replace it "
            "or set project.output_dir to a new folder"
        )


def _datasets(project: Project, registry: Registry) -> tuple[Any, Any, Any]:
    source = components.open_dataset(project, registry)
    weighted = project.classes.ignore_color is not None
    built = []
    for split, shuffle in (("train", True), ("valid", False)):
        pairs = source.pairs(split)
        if not pairs:
            raise DataError(f"the {split} split has no image/mask pairs")
        built.append(_pipeline(source, pairs, project, shuffle, weighted))
    return source, built[0], built[1]


def _pipeline(source: Any, pairs: Any, project: Project, shuffle: bool, weighted: bool) -> Any:
    from segkit.data.pipeline import make_dataset

    model = project.model
    return make_dataset(
        source, pairs, height=model.image_height, width=model.image_width, channels=model.image_channels,
        num_classes=project.classes.num_classes, batch_size=project.train.batch_size, shuffle=shuffle,
        seed=project.seed, with_weights=weighted,
    )


def _callbacks(project: Project, registry: Registry, console: Console | None) -> list[Any]:
    import keras

    from segkit.report.keras_callbacks import HistoryWriter, RichProgress

    train = project.train
    output = project.output_dir
    callbacks: list[Any] = [
        keras.callbacks.ModelCheckpoint(str(output / BEST_MODEL), monitor="val_loss", save_best_only=True),
    ]
    if train.reducer_patience > 0:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=train.reducer_factor, patience=train.reducer_patience))
    if train.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=train.patience))
    callbacks.extend(components.build_plugin_callbacks(project, registry))
    callbacks.append(HistoryWriter(output / EVAL_DIR))
    if console is not None:
        callbacks.append(RichProgress(console, train.epochs))
    return callbacks


def train(project: Project, registry: Registry, console: Console | None, overwrite: bool = False) -> TrainResult:
    """Fit, checkpointing the best validation loss; returns what the summary shows."""
    check_run_folder(project, overwrite)
    import_tensorflow()
    seed_everything(project.seed)
    source, train_data, valid_data = _datasets(project, registry)
    (project.output_dir / "models").mkdir(parents=True, exist_ok=True)
    write_atomic(project.output_dir / RESOLVED_PROJECT, project.resolved_toml())
    model = components.build_model(project, registry)
    components.compile_model(model, project, registry)
    history = model.fit(train_data, validation_data=valid_data, epochs=project.train.epochs, verbose=0,
                        callbacks=_callbacks(project, registry, console))
    logs = {k: float(v[-1]) for k, v in history.history.items()}
    notes = list(getattr(source, "notes", lambda: [])())
    return TrainResult(len(history.history.get("loss", [])), float(min(history.history["val_loss"])), logs, notes)

