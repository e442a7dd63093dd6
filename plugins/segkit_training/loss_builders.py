"""Builders of the losses the training plugin registers (Keras's own losses, by their Keras names)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from segkit.specs import LossRequest

if TYPE_CHECKING:
    import keras

def categorical_crossentropy(request: LossRequest) -> keras.losses.Loss:
    import keras

    # divide by the weight sum, not the pixel count, so ignored pixels change nothing
    return keras.losses.CategoricalCrossentropy(name="categorical_crossentropy", reduction="mean_with_sample_weight")

