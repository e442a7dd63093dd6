"""Which pyramid level a model reads a slide at, and the tiles of the slide it is applied to.

A tile is a model input: ``read_width x read_height`` pixels of the chosen level, resampled to the
model's size, so that the model sees the pixel size it was trained at. Every position is in
level-0 pixels (what OpenSlide's ``read_region`` and every output take). Neighbouring tiles
overlap; each owns a ``core``, the cores of all tiles tiling the region without gap or overlap, so
that a seam stitcher keeps each nucleus once, in the tile that owns its centre.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segkit.data.names import shown_path
from segkit.data.tiles import window_starts
from segkit.errors import DataError
from segkit.slides.open_slide import level_origin, require_microns_per_pixel
from segkit.slides.tissue import TissueMask
from segkit.specs import Slide

#: a level up to this much coarser than the model's pixel size is read as it is: scanners' nominal
#: sizes differ by a few percent from a model's (0.2527 against 0.25 µm), and resampling by 1% only blurs
TOLERANCE = 0.10


@dataclass(frozen=True)
class Rect:
    """A rectangle in level-0 pixels."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Tile:
    """One model input: ``read_width x read_height`` pixels of ``level`` whose top-left corner is level-0
    ``(x, y)``; its footprint on level 0 is ``width x height``, of which it owns ``core``.

    ``row`` and ``column`` are its place in the region's grid (tiles left out for glass keep theirs).
    """

    row: int
    column: int
    level: int
    x: int
    y: int
    width: int
    height: int
    read_width: int
    read_height: int
    core: Rect


@dataclass(frozen=True)
class _Span:
    """A tile's extent along one axis: its first pixel on the level, its footprint and core on level 0."""

    start: int
    origin: int
    end: int
    core_start: int
    core_end: int


def choose_level(slide: Slide, target_mpp: float, *, source: Path) -> tuple[int, float]:
    """``(level, scale)``: read ``level`` and shrink it by ``scale`` (>= 1) to reach ``target_mpp`` µm per pixel.

    The level is the coarsest one at least as fine as the target, a level within :data:`TOLERANCE`
    coarser counting as fine enough (read at scale 1). A target finer than that is refused:
    upsampling invents detail.
    """
    mpp = require_microns_per_pixel(slide, source)
    sizes = [(mpp[0] + mpp[1]) / 2 * downsample for downsample in slide.level_downsamples]
    fitting = [level for level, size in enumerate(sizes) if size <= target_mpp * (1 + TOLERANCE)]
    if not fitting:
        raise DataError(f"{shown_path(source)}: the model's pixel size, {target_mpp:g} µm, is finer than the slide's "
                        f"level 0, {sizes[0]:.4g} µm per pixel (upsampling invents detail: use a model trained at "
                        f"{sizes[0]:.3g} µm per pixel or coarser, or correct [model] microns_per_pixel)")
    level = max(fitting, key=lambda candidate: sizes[candidate])
    return level, max(1.0, target_mpp / sizes[level])


def tile_grid(slide: Slide, level: int, scale: float, tile: tuple[int, int], overlap: float, tissue: TissueMask,
              region: tuple[int, int, int, int] | None = None, *, source: Path) -> list[Tile]:
    """The tiles of ``region`` (level-0 ``x, y, width, height``; the whole slide when None) that touch tissue.

    ``tile`` is the model's input ``(width, height)``, ``overlap`` the share of a tile its neighbour
    covers too. Raster order (rows top to bottom, left to right within a row).
    """
    x, y, width, height = _checked_region(slide, region, source)
    downsample = slide.level_downsamples[level]
    read_width, read_height = (max(1, round(side * scale)) for side in tile)
    columns = _spans(x, width, read_width, overlap, downsample)
    rows = _spans(y, height, read_height, overlap, downsample)
    touches = _tissue_lookup(tissue)
    return [Tile(r, c, level, across.origin, down.origin, across.end - across.origin, down.end - down.origin,
                 read_width, read_height,
                 Rect(across.core_start, down.core_start, across.core_end - across.core_start,
                      down.core_end - down.core_start))
            for r, down in enumerate(rows) for c, across in enumerate(columns)
            if touches(across.origin, down.origin, across.end, down.end)]


def level_zero(coordinate: int, downsample: float) -> int:
    """The first level-0 pixel of a level's pixel ``coordinate``: the one :func:`level_origin` maps back to it."""
    return math.ceil(coordinate * downsample - 1e-9)


def _checked_region(slide: Slide, region: tuple[int, int, int, int] | None, source: Path
                    ) -> tuple[int, int, int, int]:
    width, height = slide.level_dimensions[0]
    if region is None:
        return 0, 0, width, height
    x, y, w, h = region
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise DataError(f"{shown_path(source)}: region x={x}, y={y}, {w}x{h} is outside the slide, which is "
                        f"{width}x{height} pixels at level 0 (give x,y,w,h with w and h at least 1 that lie within it)")
    return x, y, w, h


def _spans(start: int, length: int, read: int, overlap: float, downsample: float) -> list[_Span]:
    """The tiles along one axis of the region ``start .. start + length`` (level 0): ``read`` level pixels
    long, ``overlap`` apart as :func:`segkit.data.tiles.tile_origins` places windows, the last one ending at
    the region's end; each core ends halfway through its overlap with the next tile."""
    first = level_origin(start, downsample)
    last = level_origin(start + length - 1, downsample) + 1
    stride = max(1, round(read * (1 - overlap)))
    starts = [first + offset for offset in window_starts(last - first, read, stride)]
    origins = [level_zero(s, downsample) for s in starts]
    ends = [level_zero(s + read, downsample) for s in starts]
    cuts = [start, *((origins[i] + ends[i - 1]) // 2 for i in range(1, len(starts))), start + length]
    return [_Span(s, origins[i], ends[i], cuts[i], cuts[i + 1]) for i, s in enumerate(starts)]


def _tissue_lookup(tissue: TissueMask) -> Callable[[int, int, int, int], bool]:
    """Whether any tissue pixel of the mask lies in a level-0 rectangle ``(x0, y0)..(x1, y1)`` (summed areas)."""
    sums = np.pad(tissue.mask.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    rows, columns = tissue.mask.shape
    scale = tissue.downsample

    def touches(x0: int, y0: int, x1: int, y1: int) -> bool:
        # mask pixel j spans level-0 [j * scale, (j + 1) * scale): it meets [x0, x1) when j in these bounds
        c0, c1 = min(columns, math.floor(x0 / scale)), min(columns, math.ceil(x1 / scale))
        r0, r1 = min(rows, math.floor(y0 / scale)), min(rows, math.ceil(y1 / scale))
        return bool(sums[r1, c1] - sums[r0, c1] - sums[r1, c0] + sums[r0, c0] > 0)

    return touches
