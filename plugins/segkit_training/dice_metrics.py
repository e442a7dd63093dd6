"""Dice scores for one-hot segmentation, as Keras metrics that save and reload.

``dice_coef_multiclass`` is the reference project's figure, kept so numbers compare: a soft Dice
over *all* channels, background included, averaged over the batch. On histology, where ~98% of
pixels are background, it is ~0.98 for any sane model, so segkit always reports the honest
figures beside it: per-class Dice and IoU, and the mean Dice over foreground classes, all
accumulated over the whole split from a confusion matrix (Keras's ``IoU`` machinery) rather
than averaged per batch. All of those figures read one matrix: each confusion-matrix metric costs
an argmax and a scatter over every pixel of the batch, and tracing seven of them was a tenth of a
run's time to its first step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="segkit")
def dice_coef_multiclass(y_true: Any, y_pred: Any, smooth: float = 1e-6) -> Any:
    """Per-image soft Dice over every channel (background included); the mean is taken by Keras.

    Ignored pixels arrive as all-zero one-hot rows; the prediction there is masked out too, so
    they count nowhere (with no ignored pixel this is exactly the reference's formula).
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32") * ops.sum(y_true, axis=-1, keepdims=True)
    intersection = ops.sum(y_true * y_pred, axis=(1, 2, 3))
    total = ops.sum(y_true, axis=(1, 2, 3)) + ops.sum(y_pred, axis=(1, 2, 3))
    return (2.0 * intersection + smooth) / (total + smooth)


@keras.saving.register_keras_serializable(package="segkit")
class DiceCoefMulticlass(keras.metrics.MeanMetricWrapper):
    """The reference's ``dice_coef_multiclass`` as a stateful metric (mean over images seen)."""

    def __init__(self, name: str = "dice_coef_multiclass", dtype: Any = None) -> None:
        super().__init__(fn=dice_coef_multiclass, name=name, dtype=dtype)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        # Per-pixel weights only mark ignored pixels, which y_true already encodes; one value per
        # image is averaged, as in the reference.
        return super().update_state(y_true, y_pred)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


class SharedConfusionMatrix:
    """Mixin for Keras's ``IoU`` family: optionally read the matrix another metric accumulates.

    With ``counted_by=other``, ``update_state`` does nothing and ``result`` reads ``other``'s
    ``total_cm``; ``other`` must be updated first (it is, when it comes first in the compiled
    metrics). The link is not part of ``get_config``: a reloaded metric counts for itself,
    which gives the same figures.
    """

    _matrix_of: Callable[[], Any] | None = None

    def _share(self, counted_by: keras.metrics.IoU | None) -> None:
        if counted_by is not None:
            # a closure, not an attribute: Keras would track the other metric and its matrix twice
            self._matrix_of = lambda: counted_by.total_cm

    @property
    def total_cm(self) -> Any:
        return self._matrix_of() if self._matrix_of is not None else self._own_cm

    @total_cm.setter
    def total_cm(self, variable: Any) -> None:
        self._own_cm = variable

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        if self._matrix_of is None:
            return super().update_state(y_true, y_pred, sample_weight)  # type: ignore[misc]
        return None


@keras.saving.register_keras_serializable(package="segkit")
class ConfusionIoU(SharedConfusionMatrix, keras.metrics.IoU):
    """Keras's ``IoU`` (one-hot inputs by default), able to read a shared confusion matrix."""

    def __init__(
        self,
        num_classes: int,
        target_class_ids: list[int] | tuple[int, ...],
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_true: bool = False,
        sparse_y_pred: bool = False,
        axis: int = -1,
        counted_by: keras.metrics.IoU | None = None,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            target_class_ids=target_class_ids,
            name=name,
            dtype=dtype,
            ignore_class=ignore_class,
            sparse_y_true=sparse_y_true,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
        )
        self._share(counted_by)


@keras.saving.register_keras_serializable(package="segkit")
class ConfusionDice(ConfusionIoU):
    """Dice of ``target_class_ids`` from the accumulated confusion matrix (one-hot inputs).

    Per class, Dice = 2·TP / (2·TP + FP + FN); with several targets the result is their mean,
    over the classes that occur in the truth or the prediction (as Keras's ``IoU`` does).
    Pixels with sample weight 0 (ignored) do not count. ``counted_by``: see
    :class:`SharedConfusionMatrix`.
    """

    def result(self) -> Any:
        matrix = ops.cast(self.total_cm, "float32")
        true_positives = ops.diagonal(matrix)
        predicted = ops.sum(matrix, axis=0)
        actual = ops.sum(matrix, axis=1)
        ids = list(self.target_class_ids)
        tp = ops.take(true_positives, ids)
        denominator = ops.take(predicted + actual, ids)
        present = ops.cast(ops.greater(denominator, 0), "float32")
        dice = ops.divide_no_nan(2.0 * tp, denominator)
        return ops.divide_no_nan(ops.sum(dice * present), ops.sum(present))
