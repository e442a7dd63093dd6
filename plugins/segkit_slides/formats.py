"""Which files each built-in reader claims, and the builders, which import a reader only when it opens a file."""

from __future__ import annotations

from pathlib import Path

from segkit.plugin import Slide

#: the suffixes OpenSlide's drivers read (https://openslide.org/formats/)
OPENSLIDE_SUFFIXES = frozenset((".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide",
                                ".bif", ".dcm"))
#: the first four bytes of a little- or big-endian classic TIFF or BigTIFF
TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


def is_ome_tiff_name(path: Path) -> bool:
    return path.name.lower().endswith((".ome.tif", ".ome.tiff")) and is_tiff(path)


def is_openslide_name(path: Path) -> bool:
    return path.suffix.lower() in OPENSLIDE_SUFFIXES


def is_tiff(path: Path) -> bool:
    """Whether the file starts like a TIFF (SVS, NDPI, SCN and OME-TIFF all do)."""
    try:
        with path.open("rb") as stream:
            return stream.read(4) in TIFF_MAGIC
    except OSError:
        return False


def open_ome_tiff(path: Path) -> Slide:
    from segkit_slides.ome_tiff_reader import OmeTiffSlide

    return OmeTiffSlide.open(path)


def open_with_openslide(path: Path) -> Slide:
    from segkit_slides.openslide_reader import OpenSlideSlide

    return OpenSlideSlide.open(path)


def open_with_tiffslide(path: Path) -> Slide:
    from segkit_slides.tiffslide_reader import TiffSlideSlide

    return TiffSlideSlide.open(path)
