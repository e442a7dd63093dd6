"""The original UCSB breast-cancer-cell download: finding, pairing and grouping its files.

The download holds ``Images/<core>_<benign|malignant><n>_ccd.tif`` and
``Masks/<core>_<benign|malignant><n>.TIF``. Image and mask names differ (``_ccd``, suffix case),
so files are paired by stem, never by listing order. ``<core>`` is the tissue-microarray core
(``ytmaNN_MMDDYY``); images of one core are neighbouring views of the same tissue, which is why
they must never be spread over training and evaluation splits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from segkit.plugin import DataError, image_size, scan_image_folder

IMAGES_DIR, MASKS_DIR = "Images", "Masks"
TIFF_SUFFIXES = (".tif", ".tiff")
LABELS = {"benign": 1, "malignant": 2}

# The core is everything before the class word; in the UCSB set that is always ytmaNN_MMDDYY.
# Matching it loosely keeps a renamed core (e.g. "ytma10_010704b") pairable, still one group.
_STEM = re.compile(r"^(?P<core>.+?)_(?P<label>benign|malignant)(?P<index>\d*)$", re.IGNORECASE)
_CCD = re.compile(r"_ccd$", re.IGNORECASE)


@dataclass(frozen=True)
class UcsbPair:
    """One image and its mask, with the class of all its nuclei and the core it was cut from."""

    stem: str
    image: Path
    mask: Path
    label: str
    core: str

    @property
    def class_index(self) -> int:
        return LABELS[self.label]


@dataclass(frozen=True)
class Layout:
    """The pairs found in a download, and the masks no image claimed (reported, not fatal)."""

    pairs: tuple[UcsbPair, ...]
    orphan_masks: tuple[Path, ...]


def _tiffs(folder: Path) -> list[Path]:
    """The TIFF files in ``folder``; a folder, broken link or link loop named ``x.tif`` is an error."""
    listing = scan_image_folder(folder, TIFF_SUFFIXES)
    if listing.rejected:
        raise listing.rejected[0].error()
    return listing.files


def _subfolder(source: Path, name: str) -> Path:
    """``source/name`` matched case-insensitively, since archives get unpacked on any OS."""
    if not source.is_dir():
        raise DataError(f"{source}: source folder not found; pass the folder that holds {IMAGES_DIR}/ and {MASKS_DIR}/")
    for child in sorted(source.iterdir()):
        if child.is_dir() and child.name.lower() == name.lower():
            return child
    raise DataError(
        f"{source}: no {name}/ folder; pass the unpacked UCSB download, which holds {IMAGES_DIR}/ and {MASKS_DIR}/"
    )


def image_stem(path: Path) -> str:
    """``ytma49_042003_malignant1_ccd.tif`` -> ``ytma49_042003_malignant1`` (the mask's stem)."""
    return _CCD.sub("", path.stem)


def _index_by_stem(paths: Iterable[Path], what: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in paths:
        stem = image_stem(path) if what == "image" else path.stem
        if stem in found:
            raise DataError(
                f"{path}: same {what} stem '{stem}' as {found[stem].name}; keep one of the two files"
            )
        found[stem] = path
    return found


def parse_stem(stem: str, image: Path) -> tuple[str, str]:
    """``(core, label)`` of a stem like ``ytma49_042003_malignant1``."""
    match = _STEM.match(stem)
    if match is None:
        raise DataError(
            f"{image}: name does not read as <core>_<benign|malignant><n>_ccd.tif, so its class and "
            "tissue core are unknown; rename it or remove it from the folder"
        )
    return match["core"], match["label"].lower()


def _pair(stem: str, image: Path, masks: Mapping[str, Path], masks_dir: Path) -> UcsbPair:
    if stem not in masks:
        raise DataError(
            f"{image}: no mask {masks_dir / stem}.TIF for this image; add the mask or remove the image"
        )
    core, label = parse_stem(stem, image)
    return UcsbPair(stem=stem, image=image, mask=masks[stem], label=label, core=core)


def discover(source: Path) -> Layout:
    """Every image of ``source/Images`` paired with its mask in ``source/Masks``, by stem."""
    images_dir, masks_dir = _subfolder(source, IMAGES_DIR), _subfolder(source, MASKS_DIR)
    images = _index_by_stem(_tiffs(images_dir), "image")
    masks = _index_by_stem(_tiffs(masks_dir), "mask")
    if not images:
        raise DataError(f"{images_dir}: no .tif images; pass the unpacked UCSB download")
    pairs = tuple(_pair(stem, images[stem], masks, masks_dir) for stem in sorted(images))
    orphans = tuple(masks[stem] for stem in sorted(masks) if stem not in images)
    return Layout(pairs=pairs, orphan_masks=orphans)


def check_pairs(pairs: Sequence[UcsbPair]) -> None:
    """Read every header before anything is written, so a bad file leaves no half-prepared folder."""
    for pair in pairs:
        size, mask_size = image_size(pair.image), image_size(pair.mask)
        if size != mask_size:
            raise DataError(f"{pair.mask}: mask is {mask_size[0]}x{mask_size[1]} but its image {pair.image.name} "
                            f"is {size[0]}x{size[1]}; replace the mask with the matching one")


def core_labels(pairs: Iterable[UcsbPair]) -> dict[str, str]:
    """Core -> its stratum: the class of its images, ``benign+malignant`` if it holds both."""
    labels: dict[str, set[str]] = {}
    for pair in pairs:
        labels.setdefault(pair.core, set()).add(pair.label)
    return {core: "+".join(sorted(found)) for core, found in sorted(labels.items())}
