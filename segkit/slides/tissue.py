"""Where a slide holds tissue: a boolean mask on a low-resolution level, so that glass is never read.

The mask is Otsu's threshold of the level's saturation (glass is grey, stained tissue coloured)
and/or its optical density (glass lets the light through), specks dropped and small holes filled.
Pen marks are kept: they are as saturated and dense as tissue, and telling them apart by hue
would also drop blue-stained tissue; dark dust, being grey, is dropped by the saturation test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from segkit.durable import temporary_for
from segkit.errors import DataError
from segkit.specs import Slide

TissueMethod = Literal["saturation", "optical_density", "all"]
#: Otsu's threshold is kept within these bounds: on a slide of glass only it would split the glass's
#: noise, on one of tissue only it would split pale tissue from dark. Eosin-pale stroma is above the
#: upper bound, glass (JPEG-tinted included) below the lower one.
SATURATION_BOUNDS = (0.05, 0.15)
#: bounds of the threshold of the optical density summed over R, G and B (log10, the stains' unit)
OPTICAL_DENSITY_BOUNDS = (0.1, 0.3)
#: specks and holes removed, in pixels of the mask, when the slide's pixel size is unknown
FALLBACK_PIXELS = 16
#: side of the blocks a level is read in when it must be reduced further (bounded memory)
BLOCK = 2048


@dataclass(frozen=True)
class TissueMask:
    """Tissue (True) per pixel of a low level; one mask pixel spans ``downsample`` level-0 pixels."""

    mask: np.ndarray
    level: int
    downsample: float

    def area_mm2(self, microns_per_pixel: tuple[float, float],
                 region: tuple[int, int, int, int] | None = None) -> float:
        """The tissue's area in mm² (the slide's level-0 pixel size in µm), of level-0 ``region``
        (x, y, width, height; mask pixels whose centre lies in it) or of the whole slide."""
        pixel_um2 = self.downsample**2 * microns_per_pixel[0] * microns_per_pixel[1]
        mask = self.mask
        if region is not None:
            x, y, width, height = region
            rows, columns = ((np.arange(n) + 0.5) * self.downsample for n in mask.shape)
            inside_rows, inside_columns = (rows >= y) & (rows < y + height), (columns >= x) & (columns < x + width)
            mask = mask[np.ix_(inside_rows, inside_columns)]
        return float(mask.sum()) * pixel_um2 / 1e6


def tissue_level(slide: Slide, min_side: int) -> int:
    """The smallest level whose long side is at least ``min_side`` pixels; level 0 when none is."""
    long_sides = [max(size) for size in slide.level_dimensions]
    fitting = [level for level, side in enumerate(long_sides) if side >= min_side]
    return max(fitting, default=0)


def tissue_mask(slide: Slide, source: Path | str, *, method: TissueMethod, min_side: int,
                min_tissue_area: float, max_hole_area: float) -> TissueMask:
    """The tissue of ``slide`` (``source`` names it in errors), ``[slides]``'s settings as keywords.

    Areas are in µm², turned into mask pixels with the slide's pixel size. Raises DataError when
    no tissue is left.
    """
    level = tissue_level(slide, min_side)
    rgb, factor = _low_resolution(slide, level, min_side)
    downsample = slide.level_downsamples[level] * factor
    specks, holes = (_mask_pixels(area, downsample, slide.microns_per_pixel)
                     for area in (min_tissue_area, max_hole_area))
    mask = _cleaned(detect_tissue(rgb, method), specks, holes)
    if not mask.any():
        raise DataError(f"{source}: no tissue found on level {level} ({rgb.shape[1]}x{rgb.shape[0]} px, [slides] "
                        f"tissue = '{method}') (check that the slide is not blank, or try another [slides] tissue "
                        "or a smaller min_tissue_area)")
    return TissueMask(mask, level, downsample)


def detect_tissue(rgb: np.ndarray, method: TissueMethod) -> np.ndarray:
    """Tissue per pixel of an ``(H, W, 3)`` uint8 image: above Otsu's threshold on each test ``method`` names."""
    from skimage.color import rgb2hsv

    tests = []
    if method in ("saturation", "all"):
        saturation = rgb2hsv(rgb)[..., 1]
        tests.append(saturation > _bounded_otsu(saturation, SATURATION_BOUNDS))
    if method in ("optical_density", "all"):
        density = -np.log10((rgb.astype(np.float32) + 1) / 256).sum(axis=-1)
        tests.append(density > _bounded_otsu(density, OPTICAL_DENSITY_BOUNDS))
    return np.logical_and.reduce(tests)


def write_tissue_png(path: Path, mask: np.ndarray) -> None:
    """``mask`` as a black (glass) and white (tissue) 8-bit PNG, renamed into place when complete."""
    from PIL import Image

    temporary = temporary_for(path)
    try:
        Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(temporary, format="PNG")
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def _bounded_otsu(values: np.ndarray, bounds: tuple[float, float]) -> float:
    from skimage.filters import threshold_otsu

    return float(np.clip(threshold_otsu(values), *bounds))


def _mask_pixels(area_um2: float, downsample: float, microns_per_pixel: tuple[float, float] | None) -> int:
    if microns_per_pixel is None:
        return FALLBACK_PIXELS
    pixel_um2 = downsample**2 * microns_per_pixel[0] * microns_per_pixel[1]
    return math.ceil(area_um2 / pixel_um2)


def _cleaned(mask: np.ndarray, specks: int, holes: int) -> np.ndarray:
    """``mask`` without objects of fewer than ``specks`` pixels, holes under ``holes`` pixels filled."""
    from skimage.morphology import remove_small_holes, remove_small_objects

    # max_size is the largest size removed: "fewer than N pixels" is N - 1
    kept = remove_small_objects(mask, max_size=specks - 1) if specks > 1 else mask
    return remove_small_holes(kept, max_size=holes - 1) if holes > 1 else kept


def _low_resolution(slide: Slide, level: int, min_side: int) -> tuple[np.ndarray, int]:
    """``level`` as RGB, reduced by a whole factor when it is over twice ``min_side`` (a slide without a
    small enough level), read in blocks so that no more than a block of it is ever in memory at once."""
    width, height = slide.level_dimensions[level]
    factor = max(1, max(width, height) // (2 * min_side))
    block = factor * max(1, BLOCK // factor)
    downsample = slide.level_downsamples[level]
    rows = []
    for y in range(0, height, block):
        row = [_reduced(slide.read_region(level, round(x * downsample), round(y * downsample),
                                          min(block, width - x), min(block, height - y)), factor)
               for x in range(0, width, block)]
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0), factor


def _reduced(rgb: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return np.asarray(rgb, np.uint8)
    from skimage.measure import block_reduce

    # a block cut by the slide's edge is filled with glass, which the edge is beyond
    mean = block_reduce(np.asarray(rgb), (factor, factor, 1), np.mean, cval=255)
    return np.round(mean).astype(np.uint8)
