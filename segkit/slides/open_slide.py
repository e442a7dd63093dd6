"""Opening a slide: which reader plugin reads a file, and the checks every slide gets alike.

:func:`open_slide` tries the installed slide readers (hook ``segkit_slide_readers``) that claim a
file, lowest ``order`` first (the built-ins: ``ome-tiff`` for ``.ome.tif(f)``, then ``openslide``,
then ``tiffslide``), or the one named. What it returns wraps the reader's slide in
:class:`CheckedSlide`, so that every reader, a third party's included, answers a bad level or
region with the same one line, pads what lies beyond the slide with white, and honours a
pixel-size override. Nothing here imports a slide library: the readers do, when they open a file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar, cast

import numpy as np

from segkit.data.names import shown_path
from segkit.errors import DataError, PluginError
from segkit.plugins import Registry
from segkit.specs import Slide, SlideReaderSpec

#: what the readers need that segkit does not install by itself
SLIDES_EXTRA = 'pip install "segkit[slides]"'
#: what glass looks like, and what segkit shows where there is no slide
WHITE = 255

_Self = TypeVar("_Self", bound="ClosesOnExit")


def missing_slide_library(reader: str, library: str) -> PluginError:
    """The one line for a reader whose library is not installed."""
    return PluginError(f"slide reader '{reader}' needs {library}, which is not installed ({SLIDES_EXTRA})")


def undecodable_region(path: Path, level: int, region: Sequence[int], reason: object) -> DataError:
    """The one line for a tile that fails to decode while ``region`` (x, y, width, height) is read."""
    return DataError(f"{shown_path(path)}: level {level}, region {_region_text(region)}: a tile cannot be decoded, "
                     f"the file is truncated or corrupt ({_first_line(reason)}; copy or export the slide again)")


def level_origin(coordinate: int, downsample: float) -> int:
    """A level-0 coordinate in a level's pixels, as OpenSlide maps it (a hair under an integer counts as it)."""
    return math.floor(coordinate / downsample + 1e-9)


def slide_downsamples(dimensions: Sequence[tuple[int, int]]) -> tuple[float, ...]:
    """Each level's downsample as OpenSlide computes it: the mean of the width and height ratios to level 0."""
    width0, height0 = dimensions[0]
    return tuple((width0 / width + height0 / height) / 2 for width, height in dimensions)


def require_microns_per_pixel(slide: Slide, path: Path,
                              how: str = "set it with microns_per_pixel, the scanner's µm per pixel"
                              ) -> tuple[float, float]:
    """The slide's ``(x, y)`` µm per pixel, or one line saying the file has none (never a guess)."""
    if slide.microns_per_pixel is None:
        raise DataError(f"{shown_path(path)}: the slide's metadata holds no pixel size ({how})")
    return slide.microns_per_pixel


def open_slide(path: Path, registry: Registry, reader: str | None = None,
               microns_per_pixel: float | tuple[float, float] | None = None) -> CheckedSlide:
    """Open ``path`` with the reader named, or the first installed one that opens it.

    ``microns_per_pixel`` replaces the file's pixel size (one number for both axes, or ``(x, y)``).
    """
    override = _checked_override(microns_per_pixel)
    _check_file(path)
    if reader is not None:
        spec = cast(SlideReaderSpec, registry.get("slide_reader", reader).spec)
        try:
            return CheckedSlide(spec.build(path), path, spec.name, override)
        except ValueError as exc:
            raise DataError(f"{shown_path(path)}: slide reader '{spec.name}' cannot open it: {_first_line(exc)} "
                            "(copy the file again if it is damaged, or choose another reader)") from None
    return _first_that_opens(path, registry, override)


def _first_that_opens(path: Path, registry: Registry, override: tuple[float, float] | None) -> CheckedSlide:
    """The first reader, by ``order`` then name, that claims the file and opens it; else why each did not."""
    specs = sorted((cast(SlideReaderSpec, r.spec) for r in registry.all("slide_reader")),
                   key=lambda spec: (spec.order, spec.name))
    if not specs:
        raise PluginError(f"no slide reader is installed to open {shown_path(path)} ({SLIDES_EXTRA})")
    tried: list[str] = []
    for spec in specs:
        if spec.can_read is not None and not spec.can_read(path):
            tried.append(f"{spec.name}: not its format")
            continue
        try:
            return CheckedSlide(spec.build(path), path, spec.name, override)
        except (ValueError, PluginError) as exc:  # this reader cannot; the next one may
            tried.append(f"{spec.name}: {_first_line(exc)}")
    raise DataError(f"{shown_path(path)}: not a slide any installed reader opens ({'; '.join(tried)}) "
                    "(convert it to a pyramidal TIFF or OME-TIFF, or install a reader for its format)")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{shown_path(path)}: no such file (check the path)")
    if path.is_dir():
        raise DataError(f"{shown_path(path)}: is a folder, not a slide (give the slide's file, e.g. the .mrxs "
                        "beside its folder)")


def _checked_override(value: float | tuple[float, float] | None) -> tuple[float, float] | None:
    if value is None:
        return None
    pair = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in pair):
        raise ValueError(f"microns_per_pixel must be a positive number or an (x, y) pair of them, got {value!r}")
    return float(pair[0]), float(pair[1])


def _first_line(value: object) -> str:
    lines = str(value).strip().splitlines()
    return lines[0] if lines else type(value).__name__


def _region_text(region: Sequence[int]) -> str:
    x, y, width, height = region
    return f"x={x}, y={y}, {width}x{height}"


class ClosesOnExit:
    """The context manager of a slide: ``with`` closes it (a reader's slide class may inherit it)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class CheckedSlide(ClosesOnExit):
    """A reader's slide with segkit's checks around it: the :class:`~segkit.specs.Slide` every caller gets.

    A level that is not in the slide, an empty region and one wholly beyond the level are one
    :class:`~segkit.errors.DataError` each; a region partly beyond the level is read where it
    overlaps and white elsewhere (so the reader is only ever asked for pixels it has).
    """

    def __init__(self, slide: Slide, path: Path, reader: str, microns_per_pixel: tuple[float, float] | None) -> None:
        self.inner = slide
        self.path = path
        self.reader = reader
        self.level_dimensions = tuple((int(w), int(h)) for w, h in slide.level_dimensions)
        self.level_downsamples = tuple(float(d) for d in slide.level_downsamples)
        self.microns_per_pixel = microns_per_pixel if microns_per_pixel is not None else slide.microns_per_pixel
        self.closed = False

    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """``(height, width, 3)`` uint8 RGB of ``level`` at level-0 ``(x, y)``, white beyond the slide."""
        self._check_level(level)
        if width < 1 or height < 1:
            raise DataError(f"{shown_path(self.path)}: region {_region_text((x, y, width, height))} is empty "
                            "(give a width and a height of at least 1)")
        downsample = self.level_downsamples[level]
        left, top = level_origin(x, downsample), level_origin(y, downsample)
        level_width, level_height = self.level_dimensions[level]
        x0, y0 = max(left, 0), max(top, 0)
        x1, y1 = min(left + width, level_width), min(top + height, level_height)
        if x0 >= x1 or y0 >= y1:
            raise DataError(f"{shown_path(self.path)}: region {_region_text((x, y, width, height))} lies outside "
                            f"level {level} ({level_width}x{level_height} pixels, {self._size_text()}) "
                            "(give a region that overlaps the slide)")
        # a clipped left or top edge starts at level-0 pixel 0 exactly, so no rounding can shift it
        inside = self._read_inside(level, x if left >= 0 else 0, y if top >= 0 else 0, x1 - x0, y1 - y0)
        if (x0, y0, x1, y1) == (left, top, left + width, top + height):
            return inside
        region = np.full((height, width, 3), WHITE, np.uint8)
        region[y0 - top:y1 - top, x0 - left:x1 - left] = inside
        return region

    def _read_inside(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        if self.closed:
            raise ValueError(f"{self.path}: read after close")
        pixels = np.asarray(self.inner.read_region(level, x, y, width, height))
        if pixels.shape != (height, width, 3) or pixels.dtype != np.uint8:
            raise PluginError(f"slide reader '{self.reader}' returned {pixels.shape} {pixels.dtype} for a "
                              f"{width}x{height} region, not ({height}, {width}, 3) uint8 (a bug in that reader)")
        return pixels

    def _check_level(self, level: int) -> None:
        count = len(self.level_dimensions)
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level < count:
            raise DataError(f"{shown_path(self.path)}: level {level!r} is not in the slide "
                            f"(choose a level from 0 to {count - 1})")

    def _size_text(self) -> str:
        width, height = self.level_dimensions[0]
        return f"{width}x{height} at level 0"

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.inner.close()
