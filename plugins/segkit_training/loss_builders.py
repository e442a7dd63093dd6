"""Builders of the losses the training plugin registers (Keras's own losses, by their Keras names)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from segkit.specs import LossRequest

if TYPE_CHECKING:
    import keras

def categorical_crossentropy(request: LossRequest) -> keras.losses.Loss:
    import keras

    return keras.losses.CategoricalCrossentropy(name="categorical_crossentropy")

