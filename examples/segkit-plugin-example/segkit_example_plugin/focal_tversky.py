"""Cross-entropy plus the focal Tversky loss, with segkit's ignored pixels (sample weight 0) left out of both.

The Tversky index ``TP / (TP + alpha * FP + beta * FN)`` is Dice with the two kinds of error
weighed apart (Salehi et al. 2017): ``beta > alpha`` makes a missed nucleus pixel cost more than
a spurious one, for small structures that a model would rather leave out. Raising ``1 - index``
to ``gamma < 1`` keeps the gradient up on classes that are already mostly right (Abraham & Khan
2019). With ``alpha = beta = 0.5`` and ``gamma = 1`` the second term is ``1 - soft Dice``.

Cross-entropy is a per-pixel loss and is averaged as Keras's ``"mean_with_sample_weight"``
reduction does: ``sum(w * ce) / sum(w)``. The index is not per-pixel, so it cannot go through
Keras's reduction; ``__call__`` applies the weights inside its sums instead. Either way a pixel
of weight 0 changes nothing, whatever its prediction.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

PACKAGE = "segkit_example"
REDUCTION = "mean_with_sample_weight"


@keras.saving.register_keras_serializable(package=PACKAGE)
class FocalTverskyCrossEntropy(keras.losses.Loss):
    """``ce_weight * CE + mean over foreground classes of (1 - Tversky index) ** gamma``.

    One-hot ``y_true``, softmax ``y_pred``. Each class's index is taken over the whole batch (a
    class missing from one image does not make that image's index undefined); class 0 is the
    background and is left out of the mean.
    """

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, gamma: float = 0.75, ce_weight: float = 1.0,
                 smooth: float = 1.0, name: str = "focal_tversky_ce", reduction: str = REDUCTION,
                 dtype: Any = None) -> None:
        if reduction != REDUCTION:
            raise ValueError(f"FocalTverskyCrossEntropy supports reduction '{REDUCTION}' only, got '{reduction}'")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.ce_weight = ce_weight
        self.smooth = smooth

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        weights = self._pixel_weights(y_true, sample_weight)
        focal = self._focal(1.0 - self._tversky_index(y_true, y_pred, weights))
        return self.ce_weight * self._cross_entropy(y_true, y_pred, weights) + ops.mean(focal[1:])

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

    def _tversky_index(self, y_true: Any, y_pred: Any, weights: Any) -> Any:
        """One index per class, ``(K,)``."""
        w = weights[..., None]
        axes = tuple(range(len(y_true.shape) - 1))
        true_positive = ops.sum(w * y_true * y_pred, axis=axes)
        false_positive = ops.sum(w * (1.0 - y_true) * y_pred, axis=axes)
        false_negative = ops.sum(w * y_true * (1.0 - y_pred), axis=axes)
        denominator = true_positive + self.alpha * false_positive + self.beta * false_negative + self.smooth
        return (true_positive + self.smooth) / denominator

    def _focal(self, distance: Any) -> Any:
        """``distance ** gamma``, with a finite gradient where ``distance`` is 0.

        For ``gamma < 1`` the slope of ``x ** gamma`` is infinite at 0, and a batch whose pixels
        are all ignored has an index of exactly 1: the gradient would be ``inf * 0``, NaN, and
        would poison every weight. The power is taken of 1 there instead and then dropped.
        """
        positive = ops.greater(distance, 0.0)
        safe = ops.where(positive, distance, ops.ones_like(distance))
        return ops.where(positive, ops.power(safe, self.gamma), ops.zeros_like(distance))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta, "gamma": self.gamma,
                "ce_weight": self.ce_weight, "smooth": self.smooth}
