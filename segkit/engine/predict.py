"""Turning uint8 images into class-index masks with a model, in batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from segkit.data.resize import resize_image


def to_input(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 ``(H, W, C)`` -> float32 ``(height, width, C)`` in [0, 1], as the pipeline feeds models."""
    return resize_image(image, height, width).astype(np.float32) / 255.0


def resize_probabilities(probabilities: np.ndarray, height: int, width: int) -> np.ndarray:
    """Softmax ``(h, w, K)`` -> ``(height, width, K)``, bilinear per class (smoother than resizing labels)."""
    if probabilities.shape[:2] == (height, width):
        return probabilities
    channels = [
        np.asarray(Image.fromarray(probabilities[:, :, k].astype(np.float32), mode="F").resize(
            (width, height), Image.Resampling.BILINEAR))
        for k in range(probabilities.shape[2])
    ]
    return np.stack(channels, axis=2)


def predict_batches(model: Any, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    """Softmax for ``(N, h, w, C)`` inputs through the model, ``batch_size`` at a time."""
    outputs = [
        np.asarray(model(inputs[start : start + batch_size], training=False))
        for start in range(0, len(inputs), batch_size)
    ]
    return np.concatenate(outputs, axis=0) if outputs else np.zeros((0,), np.float32)


def segment(
    model: Any, images: Sequence[np.ndarray], height: int, width: int, batch_size: int = 8
) -> list[np.ndarray]:
    """Class indices ``(H, W)`` for each image at its own size, the model run at ``height x width``."""
    if not images:
        return []
    inputs = np.stack([to_input(image, height, width) for image in images])
    probabilities = predict_batches(model, inputs, batch_size)
    return [
        resize_probabilities(p, image.shape[0], image.shape[1]).argmax(axis=2).astype(np.uint8)
        for p, image in zip(probabilities, images)
    ]
