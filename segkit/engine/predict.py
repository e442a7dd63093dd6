"""Turning uint8 images into softmax maps and class-index masks with a model, in batches."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from segkit.engine.prediction import Prediction
from segkit.engine.sliding_window import predict_full


@functools.cache
def _compiled() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The serving graph's two resizes as tf.functions traced once for every size: run eagerly,
    their gathers cost as much as the model itself (op-by-op dispatch)."""
    import tensorflow as tf

    from segkit.engine.serving import image_to_input, resize_bilinear

    size = (tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32))
    return (tf.function(image_to_input, input_signature=(tf.TensorSpec([None, None, None], tf.uint8), *size)),
            tf.function(resize_bilinear, input_signature=(tf.TensorSpec([None, None, None], tf.float32), *size)))


def to_input(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 ``(H, W, C)`` -> float32 ``(height, width, C)`` in [0, 1], as the pipeline feeds models.

    The TensorFlow ops of the exported serving graph (:mod:`segkit.engine.serving`), so that
    ``segkit infer`` and an export agree; the weights are Pillow's bilinear ones, as in training.
    """
    return _compiled()[0](np.asarray(image, np.uint8), height, width).numpy()


def resize_probabilities(probabilities: np.ndarray, height: int, width: int) -> np.ndarray:
    """Softmax ``(h, w, K)`` -> ``(height, width, K)``, bilinear per class (smoother than resizing labels)."""
    return _compiled()[1](np.asarray(probabilities, np.float32), height, width).numpy()


def resized_softmax(model: Any, images: Sequence[np.ndarray], how: Prediction) -> list[np.ndarray]:
    """Softmax of each image resized to the model's input, resized back to the image's size
    (the images of ``segkit infer`` in resize mode, the tiles of a slide)."""
    inputs = np.stack([to_input(image, how.height, how.width) for image in images])
    outputs = [np.asarray(model.predict_on_batch(inputs[i : i + how.batch_size]))
               for i in range(0, len(inputs), how.batch_size)]
    probabilities = np.concatenate(outputs)
    if how.tta:
        flipped = [np.asarray(model.predict_on_batch(inputs[i : i + how.batch_size, :, ::-1]))[:, :, ::-1]
                   for i in range(0, len(inputs), how.batch_size)]
        probabilities = (probabilities + np.concatenate(flipped)) / 2
    # an image already at the model's size needs no resize (bilinear to the same size is the identity)
    return [p if p.shape[:2] == image.shape[:2] else resize_probabilities(p, image.shape[0], image.shape[1])
            for p, image in zip(probabilities, images)]


def probabilities(model: Any, images: Sequence[np.ndarray], how: Prediction) -> list[np.ndarray]:
    """Softmax ``(H, W, K)`` for each image at its own size."""
    if not images:
        return []
    if how.mode == "tile":
        return [predict_full(model, image, (how.height, how.width), overlap=how.overlap,
                             batch_size=how.batch_size, tta=how.tta) for image in images]
    return resized_softmax(model, images, how)


def segment(model: Any, images: Sequence[np.ndarray], how: Prediction) -> list[np.ndarray]:
    """Class indices ``(H, W)`` uint8 for each image at its own size."""
    return [p.argmax(axis=2).astype(np.uint8) for p in probabilities(model, images, how)]
