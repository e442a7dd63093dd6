"""``segkit eval``: score the best model on the test split and write ``evaluation.csv``.

A model trained on resized images is scored on resized test pairs through tf.data, as the
reference does. A model trained on full-resolution crops is scored on the full images through
the same sliding-window prediction as ``segkit infer``, every pixel counted once.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from segkit.classes import IGNORE_INDEX
from segkit.engine import components
from segkit.engine.best_model import load_best_model
from segkit.engine.runtime import import_tensorflow, seed_everything
from segkit.errors import DataError
from segkit.plugins import Registry
from segkit.project import Project
from segkit.report.history import metric_order
from segkit.run_folder import EVALUATION
from segkit.toml_io import write_atomic


def _resized_figures(model: Any, project: Project, source: Any, pairs: list[Any]) -> dict[str, float]:
    from segkit.data.pipeline import make_dataset
    from segkit.engine.pipeline_settings import pipeline_settings

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
