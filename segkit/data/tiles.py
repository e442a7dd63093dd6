"""Tiling geometry shared by the pipeline and sliding-window inference (no TensorFlow)."""

from __future__ import annotations

import numpy as np


def window_starts(size: int, tile: int, stride: int) -> list[int]:
    """Starts of ``tile``-long windows ``stride`` apart covering ``0..size``, the last one ending at ``size``."""
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    return [*starts, size - tile]  # the last window ends exactly at the border


def tile_origins(shape: tuple[int, int], tile: tuple[int, int], overlap: float) -> list[tuple[int, int]]:
    """Top-left corners of ``tile``-sized windows covering ``shape`` with at least ``overlap`` (0..<1)."""
    (height, width), (th, tw) = shape, tile
    sy, sx = max(1, int(round(th * (1 - overlap)))), max(1, int(round(tw * (1 - overlap))))
    return [(y, x) for y in window_starts(height, th, sy) for x in window_starts(width, tw, sx)]


def pad_to(array: np.ndarray, height: int, width: int, value: int) -> np.ndarray:
    """Pad bottom/right up to at least ``height x width`` with ``value`` (never stretch)."""
    pad_h, pad_w = max(0, height - array.shape[0]), max(0, width - array.shape[1])
    if not pad_h and not pad_w:
        return array
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, constant_values=value)
