"""Prediction as TensorFlow ops: one definition for ``segkit infer`` and the exported graphs.

``segkit infer`` runs the resize steps eagerly and ``segkit export`` traces the same functions
into the SavedModel (and ONNX) graph, so a server without segkit computes the same numbers.

The resize is a separable triangle (bilinear) filter that widens with the scale when shrinking:
the weights of Pillow's antialiased bilinear resize, which the training pipeline uses. It is
written with gathers and sums rather than ``tf.image.resize(antialias=True)`` because that op
(``ScaleAndTranslate``) has no ONNX counterpart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import tensorflow as tf

from segkit.engine.sliding_window import gaussian_weights

if TYPE_CHECKING:
    from segkit.engine.prediction import Prediction

Predict = Callable[[tf.Tensor], tf.Tensor]


def _taps(in_size: tf.Tensor, out_size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Input indices ``(out, T)`` and normalised weights ``(out, T)`` of each output pixel."""
    in_f, out_f = tf.cast(in_size, tf.float32), tf.cast(out_size, tf.float32)
    scale = in_f / out_f
    support = tf.maximum(scale, 1.0)
    centres = (tf.cast(tf.range(out_size), tf.float32) + 0.5) * scale
    count = tf.cast(tf.math.ceil(2.0 * support), tf.int32) + 1
    first = tf.cast(tf.floor(centres - support), tf.int32)
    index = first[:, None] + tf.range(count)[None, :]
    distance = tf.abs(tf.cast(index, tf.float32) + 0.5 - centres[:, None]) / support
    inside = tf.logical_and(index >= 0, index < in_size)
    weights = tf.where(inside, tf.maximum(0.0, 1.0 - distance), 0.0)
    # the nearest input pixel always lies within the support, so no row sums to zero
    weights = weights / tf.reduce_sum(weights, axis=1, keepdims=True)
    return tf.clip_by_value(index, 0, in_size - 1), weights


def _resize_axis(x: tf.Tensor, axis: int, size: tf.Tensor) -> tf.Tensor:
    index, weights = _taps(tf.shape(x)[axis], size)
    gathered = tf.gather(x, index, axis=axis)  # the taps become a new axis after ``axis``
    shape = [1] * (len(x.shape) + 1)
    shape[axis], shape[axis + 1] = -1, tf.shape(weights)[1]
    return tf.reduce_sum(gathered * tf.reshape(weights, shape), axis=axis + 1)


def resize_bilinear(x: tf.Tensor, height: int | tf.Tensor, width: int | tf.Tensor) -> tf.Tensor:
    """``(H, W, C)`` -> ``(height, width, C)`` float32; an identical size returns the same values."""
    x = tf.cast(x, tf.float32)  # a float16 softmax from a mixed-precision model meets float32 weights
    return _resize_axis(_resize_axis(x, 0, height), 1, width)


def image_to_input(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """uint8 ``(H, W, C)`` -> float32 ``(height, width, C)`` in [0, 1], the model's input."""
    return resize_bilinear(tf.cast(image, tf.float32), height, width) / 255.0


def resized_probabilities(predict: Predict, image: tf.Tensor, size: tuple[int, int], tta: bool) -> tf.Tensor:
    """Softmax ``(H, W, K)`` of a model trained on resized images, as ``segkit infer`` computes it."""
    x = image_to_input(image, *size)[None]
    probabilities = predict(x)
    if tta:
        probabilities = (probabilities + tf.reverse(predict(tf.reverse(x, [2])), [2])) / 2
    return resize_bilinear(probabilities[0], tf.shape(image)[0], tf.shape(image)[1])


def window_strides(tile: tuple[int, int], overlap: float) -> tuple[int, int]:
    """The strides of :func:`segkit.data.tiles.tile_origins` (same rounding)."""
    return max(1, int(round(tile[0] * (1 - overlap)))), max(1, int(round(tile[1] * (1 - overlap))))


def _starts(size: tf.Tensor, tile: int, stride: int) -> tf.Tensor:
    # range(0, size - tile, stride) and then the window that ends at the border, as tile_origins does
    last = tf.maximum(size - tile, 0)
    return tf.concat([tf.range(0, last, stride), last[None]], axis=0)


def window_origins(shape: tf.Tensor, tile: tuple[int, int], overlap: float) -> tf.Tensor:
    """``(N, 2)`` top-left corners, row by row, equal to ``tile_origins`` of the same arguments."""
    sy, sx = window_strides(tile, overlap)
    ys, xs = tf.meshgrid(_starts(shape[0], tile[0], sy), _starts(shape[1], tile[1], sx), indexing="ij")
    return tf.stack([tf.reshape(ys, [-1]), tf.reshape(xs, [-1])], axis=1)


def _tile_predictions(predict: Predict, tiles: tf.Tensor, tta: bool) -> tf.Tensor:
    probabilities = predict(tiles)
    if tta:  # the order of sliding_window._predict, so the sums round alike
        probabilities = (probabilities + tf.reverse(predict(tf.reverse(tiles, [2])), [2])
                         + tf.reverse(predict(tf.reverse(tiles, [1])), [1]))
        probabilities = probabilities / 3.0
    return probabilities


def tiled_probabilities(predict: Predict, image: tf.Tensor, tile: tuple[int, int], num_classes: int, *,
                        overlap: float, batch_size: int, tta: bool) -> tf.Tensor:
    """Softmax ``(H, W, K)`` by Gaussian-blended windows, the graph twin of ``predict_full``."""
    th, tw = tile
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    x = tf.cast(image, tf.float32) / 255.0
    padded = tf.pad(x, [[0, tf.maximum(0, th - height)], [0, tf.maximum(0, tw - width)], [0, 0]])
    canvas = tf.shape(padded)[:2]
    origins = window_origins(canvas, tile, overlap)
    weights = tf.constant(gaussian_weights(th, tw))
    offsets = tf.stack(tf.meshgrid(tf.range(th), tf.range(tw), indexing="ij"), axis=-1)

    def body(start: tf.Tensor, total: tf.Tensor, norm: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        index = origins[start : start + batch_size][:, None, None, :] + offsets[None]
        probabilities = _tile_predictions(predict, tf.gather_nd(padded, index), tta)
        total = tf.tensor_scatter_nd_add(total, index, probabilities * weights)
        norm = tf.tensor_scatter_nd_add(norm, index, tf.broadcast_to(weights, tf.concat([tf.shape(index)[:3], [1]], 0)))
        return start + batch_size, total, norm

    total = tf.zeros(tf.concat([canvas, [num_classes]], 0), tf.float32)
    norm = tf.zeros(tf.concat([canvas, [1]], 0), tf.float32)
    _, total, norm = tf.while_loop(lambda start, *_: start < tf.shape(origins)[0], body,
                                   (tf.constant(0), total, norm))
    return (total / norm)[:height, :width]


def serving_function(model: Any, how: Prediction, channels: int, num_classes: int
                     ) -> tuple[Callable[[tf.Tensor], dict[str, tf.Tensor]], list[tf.TensorSpec]]:
    """``image uint8 (H, W, channels)`` -> ``mask uint8 (H, W)`` and ``probabilities (H, W, K)``.

    Resizing or tiling happens inside, exactly as ``segkit infer`` does for ``how``, so whoever
    serves the export needs no segkit code.
    """
    def predict(x: tf.Tensor) -> tf.Tensor:
        return tf.cast(model(x, training=False), tf.float32)

    def serve(image: tf.Tensor) -> dict[str, tf.Tensor]:
        if how.mode == "tile":
            probabilities = tiled_probabilities(predict, image, (how.height, how.width), num_classes,
                                                overlap=how.overlap, batch_size=how.batch_size, tta=how.tta)
        else:
            probabilities = resized_probabilities(predict, image, (how.height, how.width), how.tta)
        return {"mask": tf.cast(tf.argmax(probabilities, axis=-1), tf.uint8), "probabilities": probabilities}

    return serve, [tf.TensorSpec([None, None, channels], tf.uint8, name="image")]
