"""The ``openslide`` reader: OpenSlide's C library through openslide-python (openslide-bin ships it as a wheel)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from segkit.plugin import missing_slide_library, undecodable_region
from segkit_slides.openslide_like import OpenSlideLike, on_white


def _openslide() -> Any:
    """The module, or one line naming the extra: without openslide-bin, openslide-python cannot find
    the library and its import fails with an OSError rather than an ImportError."""
    try:
        import openslide
    except (ImportError, OSError):
        raise missing_slide_library("openslide", "openslide-python and openslide-bin") from None
    return openslide


class OpenSlideSlide(OpenSlideLike):
    """An ``openslide.OpenSlide`` seen as a :class:`segkit.plugin.Slide`."""

    @classmethod
    def open(cls, path: Path) -> OpenSlideSlide:
        openslide = _openslide()
        try:
            return cls(path, openslide.OpenSlide(str(path)), "openslide")
        except openslide.OpenSlideUnsupportedFormatError:
            raise ValueError("OpenSlide does not know its format") from None
        except openslide.OpenSlideError as exc:
            raise ValueError(f"OpenSlide cannot open it: {exc}") from None

    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        from openslide import OpenSlideError

        try:
            rgba = np.asarray(self.handle.read_region((x, y), level, (width, height)))
        except OpenSlideError as exc:
            raise undecodable_region(self.path, level, (x, y, width, height), exc) from None
        return on_white(rgba)
