"""What the ``openslide`` and ``tiffslide`` readers share: an OpenSlide-style handle seen as a segkit slide."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from segkit.plugin import WHITE, ClosesOnExit


class OpenSlideLike(ClosesOnExit):
    """Levels and pixel size of a handle with OpenSlide's API (``level_dimensions``, ``properties``, ...).

    ``prefix`` is the library's own property namespace: ``openslide.mpp-x`` or ``tiffslide.mpp-x``.
    """

    def __init__(self, path: Path, handle: Any, prefix: str) -> None:
        self.path = path
        self.handle = handle
        self.level_dimensions = tuple((int(w), int(h)) for w, h in handle.level_dimensions)
        self.level_downsamples = tuple(float(d) for d in handle.level_downsamples)
        self.microns_per_pixel = microns_from_properties(handle.properties, prefix)

    def close(self) -> None:
        self.handle.close()


def microns_from_properties(properties: Any, prefix: str) -> tuple[float, float] | None:
    """``(x, y)`` from ``<prefix>.mpp-x`` / ``.mpp-y``; ``None`` when either is missing or no positive number."""
    pair = []
    for axis in ("x", "y"):
        try:
            value = float(properties.get(f"{prefix}.mpp-{axis}"))
        except (TypeError, ValueError):
            return None
        if not 0 < value < float("inf"):
            return None
        pair.append(value)
    return pair[0], pair[1]


def on_white(rgba: np.ndarray) -> np.ndarray:
    """RGBA (straight alpha, as openslide-python and tiffslide give it) composited onto white:
    transparent pixels, where a scanner wrote no tile, are glass."""
    rgb, alpha = rgba[..., :3].astype(np.uint32), rgba[..., 3:].astype(np.uint32)
    if bool((alpha == 255).all()):
        return np.ascontiguousarray(rgba[..., :3])
    return ((rgb * alpha + WHITE * (255 - alpha) + 127) // 255).astype(np.uint8)
