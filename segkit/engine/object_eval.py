"""``segkit eval`` image by image: each test image's pixel scores and, with ``[instances]``, its objects.

Every test image is predicted at its own size as ``segkit infer`` predicts it (the softmax, then its
argmax mask), so its row says what a user of ``infer`` would see on it. Pixel Dice and IoU come
from the image's confusion matrix, ignored pixels left out. Objects: the project's instancer turns
the softmax into predicted nuclei; the true nuclei are the dataset's instance ids where it has them
(:class:`~segkit.specs.InstanceSource`), else the connected components of each class of the mask
(:func:`segkit.objects.labels.truth_objects`); :func:`segkit.objects.scoring.score_image` matches
them, and an object mostly inside the ignore region counts on neither side. The rows go to
``evaluation_per_image.csv``, one per image, so a user can sort for the images that fail.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segkit.classes import IGNORE_INDEX, ClassTable, safe_names
from segkit.data.pairing import Pair
from segkit.objects.classify import checked_instances
from segkit.specs import DatasetSource, Instances, InstanceSource
from segkit.toml_io import write_atomic

if TYPE_CHECKING:
    from segkit.objects.scoring import ImageScores, ObjectScores

Instancer = Callable[[np.ndarray, np.ndarray], Instances]
#: how :func:`segkit.objects.scoring.object_figures` names a figure's mean over the images
IMAGE_MEAN = "_image_mean"


def pixel_scores(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class ``(dice, iou)`` of one image from its confusion matrix; pixels of ``truth`` equal to
    IGNORE_INDEX count nowhere, and a class in neither mask scores NaN (undefined, not 0 or 1)."""
    kept = truth != IGNORE_INDEX
    pairs = truth[kept].astype(np.int64) * num_classes + predicted[kept].astype(np.int64)
    confusion = np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    hits = np.diag(confusion).astype(np.float64)
    truth_pixels, predicted_pixels = confusion.sum(axis=1), confusion.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = 2 * hits / (truth_pixels + predicted_pixels)
        iou = hits / (truth_pixels + predicted_pixels - hits)
    return dice, iou


def pixel_row(truth: np.ndarray, predicted: np.ndarray, classes: ClassTable) -> dict[str, float]:
    """One image's pixel columns, named as ``evaluation.csv`` names the split's: ``dice_<class>``,
    ``iou_<class>`` and ``mean_foreground_dice`` (the mean over the foreground classes defined)."""
    dice, iou = pixel_scores(truth, predicted, classes.num_classes)
    names = safe_names(classes.names)
    foreground = dice[1:][~np.isnan(dice[1:])]
    return {**{f"dice_{name}": float(d) for name, d in zip(names, dice)},
            **{f"iou_{name}": float(i) for name, i in zip(names, iou)},
            "mean_foreground_dice": float(foreground.mean()) if foreground.size else float("nan")}


@dataclass(frozen=True)
class ImageResult:
    """One test image's row: its pixel scores and, with ``[instances]``, its object scores."""

    name: str
    pixels: dict[str, float]
    objects: ImageScores | None


class PerImageScores:
    """Scores the test images one at a time (:meth:`add`) and keeps each one's row."""

    def __init__(self, classes: ClassTable, source: DatasetSource, instancer: Instancer | None,
                 instancer_name: str = "") -> None:
        self.classes = classes
        self.source = source
        self.instancer = instancer
        self.instancer_name = instancer_name
        self.results: list[ImageResult] = []
        #: every class by index, background included, as the scorer names them in figures
        self.class_names = dict(enumerate(classes.names))

    def add(self, pair: Pair, image: np.ndarray, mask: np.ndarray, probabilities: np.ndarray) -> None:
        """Score one test pair from its softmax ``(H, W, K)`` at the image's own size."""
        predicted = probabilities.argmax(axis=2).astype(np.uint8)
        objects = None if self.instancer is None else self._objects(pair, image, mask, probabilities)
        self.results.append(ImageResult(pair.image.name, pixel_row(mask, predicted, self.classes), objects))

    def _objects(self, pair: Pair, image: np.ndarray, mask: np.ndarray, probabilities: np.ndarray) -> ImageScores:
        from segkit.objects.labels import truth_objects
        from segkit.objects.scoring import score_image

        assert self.instancer is not None
        truth_labels, truth_classes = truth_objects(mask, self._instance_ids(pair, mask), self.classes.num_classes)
        predicted = checked_instances(self.instancer(probabilities, image), probabilities.shape, self.instancer_name,
                                      pair.image.name)
        ignore = mask == IGNORE_INDEX
        return score_image(truth_labels, truth_classes, predicted.labels, predicted.classes,
                           ignore if ignore.any() else None, range(1, self.classes.num_classes))

    def _instance_ids(self, pair: Pair, mask: np.ndarray) -> np.ndarray | None:
        """The dataset's instance ids of ``pair``, None where it has none; one line for ids of another size."""
        if not isinstance(self.source, InstanceSource):
            return None
        from segkit.objects.labels import size_mismatch

        ids = self.source.instances(pair)
        if ids is not None and np.shape(ids) != mask.shape:  # a source that checks no size of its own
            height, width = np.shape(ids)[:2]
            raise size_mismatch(pair.instances or pair.image, (width, height), pair.image, (mask.shape[1], mask.shape[0]))
        return ids

    def object_figures(self) -> dict[str, float]:
        """The split's object counts and figures (from counts summed over the images), then the
        figures' per-image means; {} without ``[instances]``."""
        scores = [result.objects for result in self.results if result.objects is not None]
        if not scores:
            return {}
        from segkit.objects.scoring import ObjectScores, object_figures

        return {**_counts(sum((image.overall for image in scores), ObjectScores())),
                **object_figures(scores, self.class_names)}

    def rows(self) -> list[dict[str, Any]]:
        """One row per image: its name, pixel scores, then object counts and scores."""
        return [{"image": result.name, **result.pixels, **self._object_columns(result.objects)}
                for result in self.results]

    def _object_columns(self, scores: ImageScores | None) -> dict[str, Any]:
        if scores is None:
            return {}
        from segkit.objects.scoring import image_figures

        return {**_counts(scores.overall), **image_figures(scores, self.class_names)}


def _counts(scores: ObjectScores) -> dict[str, float]:
    """Matched, predicted-only and truth-only objects, whatever their class: what the figures come from."""
    return {"object_tp": scores.tp, "object_fp": scores.fp, "object_fn": scores.fn}


def write_per_image(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """``evaluation_per_image.csv``: a header, then a row per image; figures as in ``evaluation.csv``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    # the union of the rows' columns in first-seen order, should one image's figures leave one out
    columns = list(dict.fromkeys(["image", *(column for row in rows for column in row)]))
    writer.writerow(columns)
    for row in rows:
        writer.writerow([figure_cell(row[column]) if column in row else "" for column in columns])
    write_atomic(path, buffer.getvalue())


def figure_cell(value: Any) -> str:
    """A CSV cell: names as they are, counts as integers, figures with six decimals (NaN as ``nan``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.6f}"
