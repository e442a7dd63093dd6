"""The epoch-change inferencer: after every epoch, segment a few fixed images and save them.

A person flips through ``epoch_change_infer/epoch_<NNN>_montage.png`` to see how the
predictions improve (or do not) while training runs, as in the reference project.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from segkit.classes import ClassTable
from segkit.data.images import read_image, write_png
from segkit.data.pairing import list_images
from segkit.data.resize import montage, resize_image
from segkit.engine.predict import segment


class EpochChangeInferencer(keras.callbacks.Callback):
    """Writes ``epoch_<NNN>_<stem>.png`` for the first ``count`` images and a montage per epoch."""

    def __init__(
        self, images: Path, count: int, classes: ClassTable, height: int, width: int, channels: int,
        output_dir: Path,
    ) -> None:
        super().__init__()
        self.files = list_images(images)[:count]
        self.classes = classes
        self.size = (height, width)
        self.channels = channels
        self.output_dir = output_dir
        self._images: list[np.ndarray] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._images = [read_image(path, self.channels) for path in self.files]
        self.output_dir.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        masks = segment(self.model, self._images, *self.size)
        colours = [self.classes.colorize(mask) for mask in masks]
        for path, colour in zip(self.files, colours):
            write_png(self.output_dir / f"epoch_{epoch + 1:03d}_{path.stem}.png", colour)
        thumb_height = min(256, self.size[0])
        thumb = thumb_height, round(thumb_height * self.size[1] / self.size[0])
        inputs = [resize_image(image, *thumb) for image in self._images]
        predictions = [resize_image(colour, *thumb) for colour in colours]
        if inputs:
            write_png(self.output_dir / f"epoch_{epoch + 1:03d}_montage.png", montage([inputs, predictions]))
