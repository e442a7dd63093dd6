"""``segkit eval``: score the best model on the test split and write ``evaluation.csv``.

A model trained on resized images is scored on resized test pairs through tf.data, as the
reference does. A model trained on full-resolution crops is scored on the full images through
the same sliding-window prediction as ``segkit infer``, every pixel counted once.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from segkit import toml_io
from segkit.classes import IGNORE_INDEX
from segkit.engine import components
from segkit.engine.runtime import import_tensorflow, seed_everything
from segkit.errors import DataError, RunStateError
from segkit.plugins import Registry, get_registry
from segkit.project import Project
from segkit.report.history import metric_order
from segkit.run_folder import BEST_MODEL, EVALUATION, RESOLVED_PROJECT
from segkit.toml_io import write_atomic


def load_best_model(project: Project, registry: Registry | None = None) -> Any:
    """The checkpoint of the run, loaded without compiling (and never in unsafe mode).

    The model plugin builds its model once first: that imports the modules whose custom Keras
    classes (``register_keras_serializable``) the file may name, which Keras needs to load it.
    """
    import keras

    path = project.output_dir / BEST_MODEL
    if not path.exists():
        raise RunStateError(f"{path}: no trained model yet; run `segkit train {project.source}` first")
    if not zipfile.is_zipfile(path):  # Keras would say "File not found" about a half-copied file
        raise RunStateError(f"{path}: is not a complete .keras file (damaged or half-copied); copy it again "
                            "or train again with --overwrite")
    components.build_model(project, registry or get_registry())
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - a foreign or damaged file is the user's to replace
        detail = " ".join(str(exc).split())[:200]
        raise RunStateError(f"{path}: cannot be loaded ({exc.__class__.__name__}: {detail}); "
                            "train again with --overwrite") from None
    _check_shape(model, project, path)
    _check_recorded_model(project, path)
    return model


def _check_shape(model: Any, project: Project, path: Path) -> None:
    expected_in = (project.model.image_height, project.model.image_width, project.model.image_channels)
    got_in, got_out = tuple(model.input_shape[1:]), model.output_shape[-1]
    if got_out != project.classes.num_classes or got_in != expected_in:
        raise RunStateError(
            f"{path}: model takes {got_in} and predicts {got_out} classes, but the project says {expected_in} "
            f"and {project.classes.num_classes} classes; train again (--overwrite) or fix the project"
        )


def _check_recorded_model(project: Project, path: Path) -> None:
    """The project's ``[model]`` must still be the one the run recorded when it trained.

    A checkpoint loads with its own architecture whatever the project says, so a project edited
    since training (``num_layers`` 3 -> 4) would silently score the old model. Keys the record
    lacks (a newer segkit's defaults) are not compared; a run without a record (a checkpoint
    copied in by hand) is checked by shape alone. A record that is there but does not read is an
    error: skipping it would score a changed model as if it were the one trained.
    """
    record = project.output_dir / RESOLVED_PROJECT
    try:
        recorded = toml_io.loads(record.read_text(encoding="utf-8")).get("model")
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError, toml_io.TOMLDecodeError, RecursionError) as exc:
        raise RunStateError(f"{record}: cannot be read ({exc}); it records what the model was trained with: "
                            "restore it, or train again with --overwrite") from None
    if not isinstance(recorded, dict):
        raise RunStateError(f"{record}: has no [model] table; it records what the model was trained with: "
                            "restore it, or train again with --overwrite")
    current = toml_io.loads(project.resolved_toml())["model"]
    changed = [key for key in sorted(current) if key in recorded and recorded[key] != current[key]]
    if changed:
        was = ", ".join(f"model.{key} = {recorded[key]!r} (project: {current[key]!r})" for key in changed)
        raise RunStateError(f"{path}: was trained with {was}; put the project back or train again with --overwrite")


def _resized_figures(model: Any, project: Project, source: Any, pairs: list[Any]) -> dict[str, float]:
    from segkit.data.pipeline import make_dataset
    from segkit.engine.train import pipeline_settings

    data = make_dataset(source, pairs, pipeline_settings(project, training=False), "test")
    return {k: float(v) for k, v in model.evaluate(data, verbose=0, return_dict=True).items()}


def _full_resolution_figures(model: Any, project: Project, registry: Registry, source: Any,
                             pairs: list[Any]) -> dict[str, float]:
    import keras

    from segkit.engine.predict import probabilities

    how = components.prediction_for(project)
    loss, metrics = components.build_loss(project, registry), components.build_metrics(project, registry)
    mean_loss = keras.metrics.Mean()
    for pair in pairs:
        image, mask = source.load(pair)
        probs = probabilities(model, [image], how)[0][None]
        # an extra all-zero row of the identity makes ignored pixels one-hot nothing
        truth = np.eye(project.classes.num_classes + 1, project.classes.num_classes, dtype=np.float32)[
            np.where(mask == IGNORE_INDEX, project.classes.num_classes, mask)]
        weights = (mask != IGNORE_INDEX).astype(np.int32)[None]
        if weights.sum():
            mean_loss.update_state(loss(truth[None], probs, sample_weight=weights), sample_weight=weights.sum())
        for metric in metrics:
            metric.update_state(truth[None], probs, sample_weight=weights)
    return {"loss": float(mean_loss.result()), **{m.name: float(m.result()) for m in metrics}}


def evaluate(project: Project, registry: Registry) -> dict[str, float]:
    """Loss and every metric on the test split, written to ``<output_dir>/evaluation.csv``."""
    import_tensorflow()
    seed_everything(project.seed)
    model = load_best_model(project, registry)
    components.compile_model(model, project, registry)
    source = components.open_dataset(project, registry)
    pairs = source.pairs("test")
    if not pairs:
        raise DataError("the test split has no image/mask pairs")
    if project.augment.crop:
        figures = _full_resolution_figures(model, project, registry, source, pairs)
    else:
        figures = _resized_figures(model, project, source, pairs)
    loss = figures.pop("loss")
    figures = {project.loss.name: loss, **{k: figures[k] for k in sorted(figures, key=metric_order)}}
    write_evaluation(project.output_dir / EVALUATION, figures)
    return figures


def write_evaluation(path: Path, figures: dict[str, float]) -> None:
    """``metric,value`` rows, the reference's layout with segkit's honest figures added."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["metric", "value"])
    for name, value in figures.items():
        writer.writerow([name, f"{value:.6f}"])
    write_atomic(path, buffer.getvalue())
