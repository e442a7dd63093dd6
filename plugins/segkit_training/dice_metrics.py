"""Dice scores for one-hot segmentation, as Keras metrics that save and reload.

``dice_coef_multiclass`` is the reference project's figure, kept so numbers compare: a soft Dice
over *all* channels, background included, averaged over the batch. On histology, where ~98% of
pixels are background, it is ~0.98 for any sane model, so segkit always reports the honest
figures beside it: per-class Dice and IoU, and the mean Dice over foreground classes, all
accumulated over the whole split from a confusion matrix (Keras's ``IoU`` machinery) rather
than averaged per batch.
"""

from __future__ import annotations

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


@keras.saving.register_keras_serializable(package="segkit")
class ConfusionDice(keras.metrics.IoU):
    """Dice of ``target_class_ids`` from the accumulated confusion matrix (one-hot inputs).

    Per class, Dice = 2·TP / (2·TP + FP + FN); with several targets the result is their mean,
    over the classes that occur in the truth or the prediction (as Keras's ``IoU`` does).
    Pixels with sample weight 0 (ignored) do not count.
    """

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
