"""Which files are slides: what ``segkit infer`` routes to the slide engine and a cohort lists.

A name an installed slide reader claims (``can_read``) is a slide, unless it is also an ordinary
image kind: a ``.tif``/``.tiff`` is a slide when it is an OME-TIFF or a tiled TIFF with more than
one resolution (a pyramid, as scanners and ``segkit infer`` write them); a flat TIFF is an image,
read whole as before. The core names no reader: the registry's readers decide what they claim.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from segkit.data.images import IMAGE_SUFFIXES
from segkit.plugins import Registry
from segkit.slides.outputs import OME_SUFFIXES
from segkit.specs import SlideReaderSpec

TIFF_SUFFIXES = (".tif", ".tiff")


def is_slide(path: Path, registry: Registry) -> bool:
    """Whether ``path`` is a slide file (see the module's docstring); hidden files never are."""
    name = path.name.lower()
    if name.startswith(".") or not path.is_file():
        return False
    if name.endswith(OME_SUFFIXES):
        return True
    if path.suffix.lower() in TIFF_SUFFIXES:
        return is_pyramidal_tiff(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return False
    return any(spec.can_read is None or spec.can_read(path)
               for spec in (cast(SlideReaderSpec, r.spec) for r in registry.all("slide_reader")))


def is_pyramidal_tiff(path: Path) -> bool:
    """A tiled TIFF whose first image has sub-resolution levels (SubIFDs or smaller pages after it)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            first = tiff.pages.first
            if not first.is_tiled:
                return False
            if len(tiff.series[0].levels) > 1:
                return True
            return any(page.shape[1] < first.shape[1] for page in list(tiff.pages)[1:4])
    except (OSError, ValueError, IndexError, tifffile.TiffFileError):
        return False


def list_slides(folder: Path, registry: Registry) -> list[Path]:
    """The slides directly in ``folder``, by name."""
    return sorted((path for path in folder.iterdir() if is_slide(path, registry)), key=lambda p: p.name)
