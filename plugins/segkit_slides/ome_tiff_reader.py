"""The ``ome-tiff`` reader: an OME-TIFF pyramid read tile by tile with tifffile (no zarr, no C library).

A region reads only the tiles (or strips) it overlaps: each one's bytes from the file, decoded by
tifffile's own codec for its page, so a level is never decoded whole.
"""

from __future__ import annotations

import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from segkit.plugin import ClosesOnExit, level_origin, slide_downsamples, undecodable_region
from segkit_slides.tiff_checks import damage, tifffile_complaints

#: what tifffile and imagecodecs raise for a tile whose bytes do not decode, or are cut short
DECODE_FAILURES = (RuntimeError, ValueError, OSError, EOFError, zlib.error)
#: OME's length units, in µm (PhysicalSizeX's default unit is µm)
MICRONS_PER_UNIT = {"µm": 1.0, "um": 1.0, "\u03bcm": 1.0, "nm": 1e-3, "Å": 1e-4, "mm": 1e3, "cm": 1e4, "m": 1e6}


class OmeTiffSlide(ClosesOnExit):
    """The first image of an OME-TIFF: level 0 and its SubIFD levels, RGB uint8 (interleaved samples)."""

    def __init__(self, path: Path, tiff: Any) -> None:
        self.path = path
        self.tiff = tiff
        series = tiff.series[0]
        self.pages = [level.keyframe for level in series.levels]
        for page in self.pages:
            _check_page(page)
        self.level_dimensions = tuple((int(p.imagewidth), int(p.imagelength)) for p in self.pages)
        self.level_downsamples = slide_downsamples(self.level_dimensions)
        self.microns_per_pixel = ome_microns_per_pixel(tiff.ome_metadata)
        # one file handle: a seek and its read must not interleave with another thread's
        self.lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> OmeTiffSlide:
        import tifffile

        with tifffile_complaints() as complaints:
            try:
                tiff = tifffile.TiffFile(path)
            except DECODE_FAILURES as exc:  # tifffile's TiffFileError is a ValueError
                raise ValueError(f"tifffile cannot open it: {str(exc).strip() or type(exc).__name__}") from None
        try:
            problem = damage(tiff, complaints) or (None if tiff.is_ome else "its first directory holds no OME-XML")
            if problem:
                raise ValueError(problem)
            return cls(path, tiff)
        except BaseException:
            tiff.close()
            raise

    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        page = self.pages[level]
        downsample = self.level_downsamples[level]
        left, top = level_origin(x, downsample), level_origin(y, downsample)
        tile_height, tile_width = page.chunks[:2]
        across = -(-int(page.imagewidth) // tile_width)
        region = np.empty((height, width, 3), np.uint8)
        for row in range(top // tile_height, (top + height - 1) // tile_height + 1):
            for column in range(left // tile_width, (left + width - 1) // tile_width + 1):
                tile = self._tile(page, row * across + column, level, (x, y, width, height))
                _paste(region, tile, row * tile_height - top, column * tile_width - left)
        return region

    def _tile(self, page: Any, index: int, level: int, region: tuple[int, int, int, int]) -> np.ndarray:
        """Tile ``index`` of ``page`` decoded, ``(tile_height, tile_width, 3)``."""
        with self.lock:
            handle = self.tiff.filehandle
            handle.seek(page.dataoffsets[index])
            data = handle.read(page.databytecounts[index])
        try:
            if len(data) < page.databytecounts[index]:
                raise EOFError(f"the file ends {page.databytecounts[index] - len(data)} bytes into a tile")
            decoded = page.decode(data, index, jpegtables=page.jpegtables)[0]
        except DECODE_FAILURES as exc:
            raise undecodable_region(self.path, level, region, exc) from None
        if decoded is None:  # a tile the writer left empty (offset 0): nothing was scanned there
            return np.full((*page.chunks[:2], 3), 255, np.uint8)
        return decoded.reshape(decoded.shape[-3:])

    def close(self) -> None:
        self.tiff.close()


def _check_page(page: Any) -> None:
    """Only interleaved 8-bit RGB (what brightfield scanners write) reads as a slide here."""
    samples = page.samplesperpixel
    if page.dtype != np.uint8 or samples != 3 or page.planarconfig != 1:
        raise ValueError(f"not an interleaved RGB uint8 image ({samples} samples of {page.dtype}, "
                         f"planar configuration {page.planarconfig})")


def _paste(region: np.ndarray, tile: np.ndarray, top: int, left: int) -> None:
    """Copy the part of ``tile`` (its corner at ``top, left`` in ``region``) that falls inside ``region``."""
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + tile.shape[0], region.shape[0]), min(left + tile.shape[1], region.shape[1])
    region[y0:y1, x0:x1] = tile[y0 - top:y1 - top, x0 - left:x1 - left]


def ome_microns_per_pixel(ome_xml: str | None) -> tuple[float, float] | None:
    """``(PhysicalSizeX, PhysicalSizeY)`` of the first image in µm; ``None`` when absent or in no length unit."""
    import tifffile

    if not ome_xml:
        return None
    images = tifffile.xml2dict(ome_xml).get("OME", {}).get("Image", {})
    pixels = (images[0] if isinstance(images, list) else images).get("Pixels", {})
    sizes = []
    for axis in ("X", "Y"):
        value, unit = pixels.get(f"PhysicalSize{axis}"), pixels.get(f"PhysicalSize{axis}Unit", "µm")
        scale = MICRONS_PER_UNIT.get(str(unit))
        if not isinstance(value, (int, float)) or scale is None or not value > 0:
            return None
        sizes.append(float(value) * scale)
    return sizes[0], sizes[1]
