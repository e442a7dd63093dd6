"""Colour augmentation of H&E images: per-channel RGB jitter and stain jitter in optical density.

Both take a uint8 ``(H, W, C)`` tensor and a stateless seed and return uint8 of the same shape,
so the pipeline can apply them after the cache and every epoch sees new colours.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Optical density (natural log) of one unit of haematoxylin, eosin and DAB in R, G, B: Ruifrok &
#: Johnston's vectors, the ones scikit-image's ``rgb2hed`` uses. Rows are stains.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], np.float32)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED).astype(np.float32)


def optical_density(rgb: Any, tf: Any) -> Any:
    """Beer-Lambert: ``-ln((I + 1) / 256)``, 0 for white; the ``+ 1`` keeps black finite."""
    return -tf.math.log((tf.cast(rgb, tf.float32) + 1.0) / 256.0)


def from_optical_density(density: Any, tf: Any) -> Any:
    """The inverse of :func:`optical_density`, rounded and clipped to uint8."""
    rgb = 256.0 * tf.exp(-density) - 1.0
    return tf.cast(tf.clip_by_value(tf.round(rgb), 0.0, 255.0), tf.uint8)


def channel_jitter(image: Any, strength: float, seed: Any, tf: Any) -> Any:
    """Per-channel scale and shift of the intensities, the usual cheap stand-in for stain variation."""
    channels = image.shape[-1]
    scale = 1.0 + tf.random.stateless_uniform((channels,), seed, -strength, strength)
    shift = tf.random.stateless_uniform((channels,), seed + 1, -strength, strength) * 255.0
    jittered = tf.cast(image, tf.float32) * scale + shift
    return tf.cast(tf.clip_by_value(jittered, 0.0, 255.0), tf.uint8)


def hed_jitter(image: Any, strength: float, seed: Any, tf: Any) -> Any:
    """Scale and shift the amount of each stain (Tellez et al. 2018, "HED" augmentation).

    The pixel's optical density is split into haematoxylin, eosin and DAB amounts; each amount
    becomes ``a * amount + b`` with ``a`` in ``1 ± strength`` and ``b`` in ``± strength`` (optical
    density units), the same ``a, b`` for the whole window. Unlike RGB jitter this varies what
    differs between labs (how much of each dye, and its tint) while white stays nearly white and
    dark nuclei stay dark. RGB images only.
    """
    scale = 1.0 + tf.random.stateless_uniform((3,), seed, -strength, strength)
    shift = tf.random.stateless_uniform((3,), seed + 1, -strength, strength)
    stains = tf.tensordot(optical_density(image, tf), tf.constant(HED_FROM_RGB), 1)
    return from_optical_density(tf.tensordot(stains * scale + shift, tf.constant(RGB_FROM_HED), 1), tf)
