"""Options and builders of the callbacks the training plugin registers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from segkit.options import Option
from segkit.run_folder import EPOCH_CHANGE_DIR
from segkit.specs import CallbackRequest

if TYPE_CHECKING:
    import keras

EPOCH_CHANGE_OPTIONS = (
    Option("images", "dir", help="folder of images to segment after every epoch"),
    Option("count", "int", 6, "how many of them (the first, by name)", minimum=1),
)


def epoch_change_inferencer(request: CallbackRequest) -> keras.callbacks.Callback:
    from segkit_training.epoch_change import EpochChangeInferencer

    return EpochChangeInferencer(
        images=request.options["images"],
        count=request.options["count"],
        classes=request.classes,
        height=request.image_height,
        width=request.image_width,
        channels=request.image_channels,
        output_dir=request.output_dir / EPOCH_CHANGE_DIR,
    )
