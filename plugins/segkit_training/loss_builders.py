"""Builders of the losses the training plugin registers (Keras's own losses, by their Keras names)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from segkit.plugin import LossRequest, Option

if TYPE_CHECKING:
    import keras

DICE_CROSSENTROPY_OPTIONS = (
    Option("dice_weight", "float", 1.0, "weight of the Dice term next to the cross-entropy", minimum=0.0),
)


def categorical_crossentropy(request: LossRequest) -> keras.losses.Loss:
    import keras

    # divide by the weight sum, not the pixel count, so ignored pixels change nothing
    return keras.losses.CategoricalCrossentropy(name="categorical_crossentropy", reduction="mean_with_sample_weight")



def dice_crossentropy(request: LossRequest) -> keras.losses.Loss:
    from segkit_training.dice_crossentropy_loss import DiceCrossentropy

    return DiceCrossentropy(dice_weight=request.options["dice_weight"])  # validated: a float, defaulted
