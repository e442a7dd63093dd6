"""What the slide engine's band hands its finished level rows to: the class mask, the nuclei.

The band (:mod:`segkit.engine.slide_infer`) blends the tiles of one grid row; once no tile still
to come covers a level row, the row is final and every sink *takes* it: the blended softmax of the
row (normalised by the blending weights; all 0 where no tile covered a pixel, i.e. glass) and its
RGB, in order, top to bottom, each row once. Rows no tile touched at all (glass between tissue
bands, above the first tile row or below the last) may never be handed over: a sink treats the
rows it was not given as glass.

A sink that holds rows between calls (the nuclei's context margin) can save what is pending and
be restored into a fresh sink, so that an interrupted slide continues where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from segkit.slides.grid import level_zero
from segkit.slides.pyramid import MaskCanvas


class RowSink(Protocol):
    """A consumer of a slide level's finished rows."""

    def take(self, top: int, softmax: np.ndarray, pixels: np.ndarray) -> None:
        """Level rows ``top .. top + n``: blended softmax ``(n, level_width, K)`` float32 (0 on glass)
        and RGB ``(n, level_width, 3)`` uint8 of the same rows."""

    def finish(self) -> None:
        """Every row has been taken: write what the sink makes."""

    def save_state(self, folder: Path) -> None:
        """Write into ``folder`` what a fresh sink needs to continue after the rows taken so far."""

    def load_state(self, folder: Path) -> None:
        """Restore what :meth:`save_state` wrote into this fresh sink."""


class MaskSink:
    """The class mask: each row's argmax (class 0 on glass), upscaled to level 0 by nearest neighbour
    and written to a :class:`MaskCanvas`. Its state is the canvas file itself, nothing pending."""

    def __init__(self, canvas: MaskCanvas, level_width: int, downsample: float) -> None:
        self.canvas, self.width, self.downsample = canvas, level_width, downsample

    def take(self, top: int, softmax: np.ndarray, pixels: np.ndarray) -> None:
        count = softmax.shape[0]
        # all-zero softmax (glass) has its argmax at class 0, the glass class
        classes = softmax.argmax(axis=-1).astype(np.uint8)
        y0 = level_zero(top, self.downsample)
        y1 = min(level_zero(top + count, self.downsample), self.canvas.height)
        if y1 <= y0:
            return
        rows = level_indices(y0, y1, self.downsample) - top
        columns = np.minimum(level_indices(0, self.canvas.width, self.downsample), self.width - 1)
        self.canvas.write(0, y0, classes[np.ix_(np.minimum(rows, count - 1), columns)])

    def finish(self) -> None:
        """Nothing: the canvas is saved as a pyramid by its owner."""

    def save_state(self, folder: Path) -> None:
        """Nothing pending: every row taken is in the canvas file."""

    def load_state(self, folder: Path) -> None:
        """Nothing to restore beyond the canvas file."""


def level_indices(start: int, end: int, downsample: float) -> np.ndarray:
    """The level pixel each level-0 pixel ``start .. end`` lies in (as ``level_origin`` maps them)."""
    return np.floor(np.arange(start, end) / downsample + 1e-9).astype(np.int64)
