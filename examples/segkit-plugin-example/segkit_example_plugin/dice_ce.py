"""Cross-entropy plus soft Dice, with segkit's ignored pixels (sample weight 0) left out of both.

Cross-entropy is a per-pixel loss and is averaged as Keras's ``"mean_with_sample_weight"``
reduction does: ``sum(w * ce) / sum(w)``. Dice is not per-pixel, so it cannot go through
Keras's reduction; ``__call__`` applies the weights inside the Dice sums instead. Either way a
pixel of weight 0 changes nothing, whatever its prediction.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

PACKAGE = "segkit_example"
REDUCTION = "mean_with_sample_weight"


@keras.saving.register_keras_serializable(package=PACKAGE)
class DiceCrossEntropy(keras.losses.Loss):
    """``ce_weight * CE + dice_weight * (1 - mean Dice)``; one-hot ``y_true``, softmax ``y_pred``.

    The Dice of each class is taken over the whole batch (a class missing from one image does
    not make that image's Dice undefined) and averaged over the foreground classes, or over all
    classes with ``include_background``.
    """

    def __init__(self, dice_weight: float = 1.0, ce_weight: float = 1.0, smooth: float = 1.0,
                 include_background: bool = False, name: str = "dice_ce", reduction: str = REDUCTION,
                 dtype: Any = None) -> None:
        if reduction != REDUCTION:
            raise ValueError(f"DiceCrossEntropy supports reduction '{REDUCTION}' only, got '{reduction}'")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.dice_weight = dice_weight
        self.ce_weight = ce_weight
        self.smooth = smooth
        self.include_background = include_background

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        weights = self._pixel_weights(y_true, sample_weight)
        return self.ce_weight * self._cross_entropy(y_true, y_pred, weights) + \
            self.dice_weight * (1.0 - self._dice(y_true, y_pred, weights))

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return self(y_true, y_pred)

    @staticmethod
    def _pixel_weights(y_true: Any, sample_weight: Any) -> Any:
        """``(B, H, W)`` weights: ones, per-pixel weights as given, or per-image weights spread out."""
        shape = ops.shape(y_true)[:-1]
        if sample_weight is None:
            return ops.ones(shape, "float32")
        weights = ops.cast(sample_weight, "float32")
        while len(weights.shape) < len(shape):
            weights = ops.expand_dims(weights, -1)
        return ops.broadcast_to(weights, shape)

    @staticmethod
    def _cross_entropy(y_true: Any, y_pred: Any, weights: Any) -> Any:
        epsilon = keras.config.epsilon()
        pixel = -ops.sum(y_true * ops.log(ops.clip(y_pred, epsilon, 1.0 - epsilon)), axis=-1)
        return ops.divide_no_nan(ops.sum(pixel * weights), ops.sum(weights))

    def _dice(self, y_true: Any, y_pred: Any, weights: Any) -> Any:
        w = weights[..., None]
        axes = tuple(range(len(y_true.shape) - 1))
        intersection = ops.sum(w * y_true * y_pred, axis=axes)
        total = ops.sum(w * (y_true + y_pred), axis=axes)
        dice = (2.0 * intersection + self.smooth) / (total + self.smooth)
        return ops.mean(dice if self.include_background else dice[1:])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dice_weight": self.dice_weight, "ce_weight": self.ce_weight,
                "smooth": self.smooth, "include_background": self.include_background}
