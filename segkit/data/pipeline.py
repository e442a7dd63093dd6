"""The tf.data input pipeline: file pairs in, ``(image, one-hot mask[, weights])`` batches out.

Files are listed, decoded in parallel by the dataset plugin's ``load`` (Pillow releases the GIL
while decoding), resized to the model size and batched; masks travel as uint8 class indices and
become one-hot only at the end, so memory holds one small array per pixel, not ``num_classes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from segkit.classes import IGNORE_INDEX
from segkit.data.pairing import Pair
from segkit.data.resize import resize_image, resize_mask
from segkit.specs import DatasetSource


def load_resized(source: DatasetSource, pair: Pair, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One pair decoded by the plugin and brought to the model size (bilinear image, nearest mask)."""
    image, mask = source.load(pair)
    return resize_image(image, height, width), resize_mask(mask, height, width)


def make_dataset(
    source: DatasetSource, pairs: Sequence[Pair], *, height: int, width: int, channels: int,
    num_classes: int, batch_size: int, shuffle: bool, seed: int, with_weights: bool = False,
) -> Any:
    """A batched ``tf.data.Dataset``; ``with_weights`` adds per-pixel weights (0 where ignored)."""
    import tensorflow as tf

    def decode(index: Any) -> tuple[np.ndarray, np.ndarray]:
        return load_resized(source, pairs[int(index)], height, width)

    def tf_decode(index: Any) -> tuple[Any, Any]:
        image, mask = tf.numpy_function(decode, [index], (tf.uint8, tf.uint8), stateful=False)
        image.set_shape((height, width, channels))
        mask.set_shape((height, width))
        return image, mask

    def to_model(image: Any, mask: Any) -> tuple[Any, ...]:
        x = tf.cast(image, tf.float32) / 255.0
        y = tf.one_hot(tf.cast(mask, tf.int32), num_classes, dtype=tf.float32)
        if not with_weights:
            return x, y
        # integer weights: Keras's confusion-matrix metrics count in int64 and warn on floats
        return x, y, tf.cast(tf.not_equal(mask, IGNORE_INDEX), tf.int32)

    indices = tf.data.Dataset.range(len(pairs))
    if shuffle:
        indices = indices.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    dataset = indices.map(tf_decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size).map(to_model, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
