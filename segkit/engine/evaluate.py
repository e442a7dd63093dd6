"""``segkit eval``: score the best model on the test split and write ``evaluation.csv``.

A model trained on resized images is scored on resized test pairs through tf.data, as the
reference does. A model trained on full-resolution crops is scored on the full images through
the same sliding-window prediction as ``segkit infer``, every pixel counted once. Either way each
test image is also predicted at its own size, as ``infer`` predicts it, for its row of
``evaluation_per_image.csv`` and, with ``[instances]``, its objects (:mod:`segkit.engine.object_eval`);
a model trained on crops is predicted once for both.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segkit.classes import IGNORE_INDEX
from segkit.engine import components
from segkit.cv.ensemble import ENSEMBLE_DIR, load_run_model
from segkit.engine.object_eval import IMAGE_MEAN, PerImageScores, figure_cell, write_per_image
from segkit.engine.runtime import import_tensorflow, seed_everything
from segkit.errors import DataError
from segkit.plugins import Registry
from segkit.project import Project
from segkit.report.history import metric_order
from segkit.run_folder import EVAL_FILES, EVALUATION, EVALUATION_PER_IMAGE, claim_entries
from segkit.toml_io import write_atomic


def _resized_figures(model: Any, project: Project, source: Any, pairs: list[Any]) -> dict[str, float]:
    from segkit.data.pipeline import make_dataset
    from segkit.engine.pipeline_settings import pipeline_settings

    data = make_dataset(source, pairs, pipeline_settings(project, training=False, source=source), "test")
    return {k: float(v) for k, v in model.evaluate(data, verbose=0, return_dict=True).items()}


def _predictions(model: Any, project: Project, source: Any,
                 pairs: list[Any]) -> Iterator[tuple[Any, np.ndarray, np.ndarray, np.ndarray]]:
    """``(pair, image, mask, softmax)`` of each test pair, predicted at the image's own size as infer does."""
    from segkit.engine.predict import probabilities

    how = components.prediction_for(project)
    for pair in pairs:
        image, mask = source.load(pair)
        yield pair, image, mask, probabilities(model, [image], how)[0]


class PixelScores:
    """The loss and every pixel metric accumulated over images predicted at their own size."""

    def __init__(self, project: Project, registry: Registry) -> None:
        import keras

        self._classes = project.classes.num_classes
        self._loss, self._metrics = components.build_loss(project, registry), components.build_metrics(project, registry)
        self._mean_loss = keras.metrics.Mean()

    def add(self, mask: np.ndarray, softmax: np.ndarray) -> None:
        probs = softmax[None]
        # an extra all-zero row of the identity makes ignored pixels one-hot nothing
        truth = np.eye(self._classes + 1, self._classes, dtype=np.float32)[
            np.where(mask == IGNORE_INDEX, self._classes, mask)]
        weights = (mask != IGNORE_INDEX).astype(np.int32)[None]
        if weights.sum():
            self._mean_loss.update_state(self._loss(truth[None], probs, sample_weight=weights),
                                         sample_weight=weights.sum())
        for metric in self._metrics:
            metric.update_state(truth[None], probs, sample_weight=weights)

    def figures(self) -> dict[str, float]:
        return {"loss": float(self._mean_loss.result()), **{m.name: float(m.result()) for m in self._metrics}}


#: sees every test prediction ``(pair, image, mask, softmax)`` of an evaluation (a cross-validation's pooled score)
Watcher = Callable[[Any, np.ndarray, np.ndarray, np.ndarray], None]


def _full_resolution_figures(model: Any, project: Project, registry: Registry, source: Any,
                             pairs: list[Any], per_image: PerImageScores, watcher: Watcher) -> dict[str, float]:
    scores = PixelScores(project, registry)
    for pair, image, mask, softmax in _predictions(model, project, source, pairs):
        per_image.add(pair, image, mask, softmax)
        watcher(pair, image, mask, softmax)
        scores.add(mask, softmax)
    return scores.figures()


@dataclass(frozen=True)
class Evaluation:
    """What ``segkit eval`` found on the test split, in the groups the console shows."""

    #: the loss and every pixel metric, accumulated over the split
    pixels: dict[str, float]
    #: object figures from counts summed over the split's images (empty without ``[instances]``)
    objects: dict[str, float]
    #: the same object figures as means over the images where each is defined (``<name>_image_mean``)
    object_image_means: dict[str, float]
    images: int

    @property
    def figures(self) -> dict[str, float]:
        """Every figure in ``evaluation.csv``'s order: pixels, then objects split-level, then per-image means."""
        return {**self.pixels, **self.objects, **self.object_image_means}


def evaluate(project: Project, registry: Registry) -> dict[str, float]:
    """Every figure of :func:`run_evaluation`, as ``evaluation.csv`` lists them."""
    return run_evaluation(project, registry).figures


def run_evaluation(project: Project, registry: Registry, watcher: Watcher | None = None,
                   folds: Sequence[int] | None = None) -> Evaluation:
    """Loss and every metric on the test split, and with ``[instances]`` the object scores, written to
    ``<output_dir>/evaluation.csv``; each test image's scores to ``evaluation_per_image.csv``.
    ``watcher`` sees each test image's prediction at the image's own size. With ``folds``, the
    ensemble of those folds' models, written into ``<output_dir>/ensemble/``."""
    instancer = components.build_instancer(project, registry)  # a key it refuses costs a second, not a model load
    import_tensorflow()
    seed_everything(project.seed)
    model = load_run_model(project, folds, registry)
    components.compile_model(model, project, registry)
    source = components.open_dataset(project, registry)
    pairs = source.pairs("test")
    if not pairs:
        raise DataError("the test split has no image/mask pairs")
    watch: Watcher = watcher or (lambda pair, image, mask, softmax: None)
    per_image = PerImageScores(project.classes, source, instancer, project.instances.name if project.instances else "")
    if project.augment.crop:
        figures = _full_resolution_figures(model, project, registry, source, pairs, per_image, watch)
    else:
        figures = _resized_figures(model, project, source, pairs)
        for prediction in _predictions(model, project, source, pairs):
            per_image.add(*prediction)
            watch(*prediction)
    result = evaluation_of(project, figures, per_image, len(pairs))
    written = project.output_dir if folds is None else project.output_dir / ENSEMBLE_DIR
    claim_entries(written, EVAL_FILES)
    write_per_image(written / EVALUATION_PER_IMAGE, per_image.rows())
    write_evaluation(written / EVALUATION, result.figures)
    return result


def evaluation_of(project: Project, figures: dict[str, float], per_image: PerImageScores, images: int) -> Evaluation:
    """The evaluation of ``figures`` (the loss as ``loss`` and the pixel metrics) and ``per_image``'s objects."""
    figures = dict(figures)
    loss = figures.pop("loss")
    pixels = {project.loss.name: loss, **{k: figures[k] for k in sorted(figures, key=metric_order)}}
    objects = per_image.object_figures()
    means = {name: value for name, value in objects.items() if name.endswith(IMAGE_MEAN)}
    return Evaluation(pixels, {k: v for k, v in objects.items() if k not in means}, means, images)


def write_evaluation(path: Path, figures: dict[str, float]) -> None:
    """``metric,value`` rows, the reference's layout with segkit's honest figures added."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["metric", "value"])
    for name, value in figures.items():
        writer.writerow([name, figure_cell(value)])
    write_atomic(path, buffer.getvalue())
