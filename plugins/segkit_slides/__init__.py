"""segkit's built-in slide readers: OME-TIFF with tifffile, then OpenSlide, then tiffslide.

Registering them imports none of their libraries: each reader's module is imported when it
opens a file (``formats.py`` holds the cheap sniffs and the builders).
"""

from __future__ import annotations

from collections.abc import Iterable

from segkit.plugin import SlideReaderSpec, hookimpl
from segkit_slides.formats import (
    is_ome_tiff_name,
    is_openslide_name,
    is_tiff,
    open_ome_tiff,
    open_with_openslide,
    open_with_tiffslide,
)


@hookimpl
def segkit_slide_readers() -> Iterable[SlideReaderSpec]:
    return [
        SlideReaderSpec(
            name="ome-tiff",
            description="OME-TIFF pyramids (levels as SubIFDs, pixel size from the OME-XML) with tifffile",
            build=open_ome_tiff, can_read=is_ome_tiff_name, order=10,
        ),
        SlideReaderSpec(
            name="openslide",
            description="SVS, NDPI, MRXS, SCN, VMS, BIF and tiled TIFF via OpenSlide (pip wheels: openslide-bin)",
            build=open_with_openslide, can_read=is_openslide_name, order=20,
        ),
        SlideReaderSpec(
            name="tiffslide",
            description="pure-Python fallback for SVS, SCN, NDPI and tiled TIFF (tiffslide, on tifffile)",
            build=open_with_tiffslide, can_read=is_tiff, order=30,
        ),
    ]
