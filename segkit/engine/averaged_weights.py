"""Validating and saving the optimizer's moving average of the weights instead of the last ones."""

from __future__ import annotations

import keras


class SwapAveragedWeights(keras.callbacks.SwapEMAWeights):
    """Keras's ``SwapEMAWeights(swap_on_epoch=True)``, told what a resumed model holds.

    Every epoch ends with the averages swapped into the model, so that validation, the best
    checkpoint and the resumable one all get them, while the optimizer's average slots hold the
    raw weights. A run resumed from that checkpoint therefore starts with the averages in the
    model: it must swap back before its first epoch, or it would train the averages.
    """

    def __init__(self, *, resumed: bool) -> None:
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = resumed  # the flag Keras's callback keeps for exactly this state
