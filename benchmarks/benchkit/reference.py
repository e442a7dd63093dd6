"""The reference approach: every pair decoded into two arrays before ``model.fit(X, Y)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PALETTE = np.array([(0, 0, 0), (0, 255, 0), (255, 0, 0)], dtype=np.int64)


def reference_decode(pair: Any, side: int) -> tuple[np.ndarray, np.ndarray]:
    """One pair decoded the way the reference's ``ImageCategorizedMaskDataset`` does it: the image
    read and resized (bilinear), the RGB mask turned into indices by ``argmin`` over the squared
    distance to every palette colour (an int64 ``(K, H, W, 3)`` temporary), then resized (nearest)."""
    from PIL import Image

    with Image.open(pair.image) as file:
        image = np.asarray(file.convert("RGB").resize((side, side), Image.Resampling.BILINEAR))
    with Image.open(pair.mask) as file:
        rgb = np.array(file.convert("RGB"))
    index = np.argmin(np.sum((rgb - PALETTE.reshape(-1, 1, 1, 3)) ** 2, axis=-1), axis=0).astype(np.uint8)
    return image, np.asarray(Image.fromarray(index).resize((side, side), Image.Resampling.NEAREST))


def reference_arrays(source: Any, pairs: Sequence[Any], side: int, num_classes: int,
                     image_dtype: str = "uint8", decode: str = "segkit") -> tuple[np.ndarray, np.ndarray]:
    """The reference approach: all images (model size) in one array, all masks as int8 one-hot.

    ``decode="segkit"`` decodes with segkit's own readers (both sides pay the same per file: the
    conservative comparison); ``"reference"`` with the reference's own per-pixel argmin."""
    from segkit.data.pipeline import load_resized

    images = np.zeros((len(pairs), side, side, 3), dtype=np.float32 if image_dtype == "float32" else np.uint8)
    masks = np.zeros((len(pairs), side, side, num_classes), dtype=np.int8)
    eye = np.eye(num_classes, dtype=np.int8)
    for n, pair in enumerate(pairs):
        if decode == "reference":
            image, mask = reference_decode(pair, side)
        else:
            image, mask = load_resized(source, pair, side, side)
        images[n] = image / np.float32(255) if image_dtype == "float32" else image
        masks[n] = eye[mask]
    return images, masks


def reference_model(model: Any, image_dtype: str) -> Any:
    """The same FlexUNet behind a ``Rescaling(1/255)`` when ``X`` is stored as uint8."""
    import keras

    if image_dtype == "float32":
        return model
    inputs = keras.Input(model.input_shape[1:], dtype="float32", name="image")
    return keras.Model(inputs, model(keras.layers.Rescaling(1 / 255)(inputs)), name="reference")
