"""The ``tiffslide`` reader: tiffslide's OpenSlide-like API on tifffile and zarr, no C library."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from segkit.plugin import missing_slide_library, undecodable_region
from segkit_slides.openslide_like import OpenSlideLike, on_white
from segkit_slides.tiff_checks import damage, tifffile_complaints

#: what tifffile, imagecodecs and zarr raise for a tile whose bytes do not decode, or are cut short
DECODE_FAILURES = (RuntimeError, ValueError, OSError, EOFError, KeyError, zlib.error)


class TiffSlideSlide(OpenSlideLike):
    """A ``tiffslide.TiffSlide`` seen as a :class:`segkit.plugin.Slide`."""

    @classmethod
    def open(cls, path: Path) -> TiffSlideSlide:
        try:
            import tiffslide
        except ImportError:
            raise missing_slide_library("tiffslide", "tiffslide") from None
        with tifffile_complaints() as complaints:
            try:
                handle = tiffslide.TiffSlide(path)
                # tiffslide finds the levels lazily: listing them is where a broken directory shows
                slide = cls(path, handle, "tiffslide")
            except DECODE_FAILURES as exc:  # tifffile's TiffFileError is a ValueError
                raise ValueError(f"tiffslide cannot open it: {str(exc).strip() or type(exc).__name__}") from None
        problem = damage(handle.ts_tifffile, complaints)
        if problem:
            handle.close()
            raise ValueError(problem)
        return slide

    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        try:
            pixels = np.asarray(self.handle.read_region((x, y), level, (width, height), as_array=True))
        except DECODE_FAILURES as exc:
            raise undecodable_region(self.path, level, (x, y, width, height), exc) from None
        return on_white(pixels) if pixels.ndim == 3 and pixels.shape[2] == 4 else pixels
