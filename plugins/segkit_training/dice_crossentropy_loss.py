"""Cross-entropy plus soft Dice of the foreground classes: nnU-Net's default segmentation loss.

Cross-entropy alone is dominated by the ~98% background of histology; the Dice term weighs each
foreground class by its own overlap, whatever its size. Ignored pixels (all-zero one-hot rows,
sample weight 0) count in neither term.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="segkit")
class DiceCrossentropy(keras.losses.Loss):
    """``categorical cross-entropy + dice_weight * (1 - soft Dice)`` on one-hot ``y_true``.

    The Dice term is a batch Dice per foreground class (channels 1..K-1, sums over every pixel
    of the batch), averaged over the classes present in the batch's truth; it is the same value
    for every pixel of the batch, so with ``reduction="mean_with_sample_weight"`` the loss is the
    weighted mean cross-entropy plus the Dice term.
    """

    def __init__(
        self,
        dice_weight: float = 1.0,
        name: str = "dice_crossentropy",
        reduction: str = "mean_with_sample_weight",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.dice_weight = dice_weight

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_pred = ops.cast(y_pred, "float32")
        y_true = ops.cast(y_true, "float32")
        crossentropy = keras.losses.categorical_crossentropy(y_true, y_pred)
        # masking the prediction keeps ignored pixels out of the Dice sums as well
        labelled = ops.sum(y_true, axis=-1, keepdims=True)
        truth, predicted = y_true[..., 1:], (y_pred * labelled)[..., 1:]
        pixels = tuple(range(len(y_true.shape) - 1))
        per_class = keras.losses.dice(truth, predicted, axis=pixels)
        present = ops.cast(ops.greater(ops.sum(truth, axis=pixels), 0), "float32")
        dice_loss = ops.divide_no_nan(ops.sum(per_class * present), ops.sum(present))
        return crossentropy + self.dice_weight * dice_loss

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dice_weight": self.dice_weight}
