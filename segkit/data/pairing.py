"""Pairing images with masks by file stem, never by list order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from segkit.data.images import is_image_file
from segkit.errors import DataError


@dataclass(frozen=True)
class Pair:
    stem: str
    image: Path
    mask: Path


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; duplicate stems are an error."""
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DataError(f"{folder}: {what}; point the project at the folder that holds the images")
    files = sorted(p for p in folder.iterdir() if is_image_file(p))
    seen: dict[str, Path] = {}
    for path in files:
        if path.stem in seen:
            raise DataError(
                f"{folder}: '{seen[path.stem].name}' and '{path.name}' share the stem '{path.stem}'; "
                "keep one of them so each image pairs with exactly one mask"
            )
        seen[path.stem] = path
    return files


def pair_by_stem(images: Path, masks: Path, *, allow_empty: bool = False) -> list[Pair]:
    """Pairs of ``images/<stem>.*`` and ``masks/<stem>.*``; unpaired files are listed in the error."""
    image_files = {p.stem: p for p in list_images(images)}
    mask_files = {p.stem: p for p in list_images(masks)}
    lonely_images = sorted(set(image_files) - set(mask_files))
    lonely_masks = sorted(set(mask_files) - set(image_files))
    if lonely_images or lonely_masks:
        parts = []
        if lonely_images:
            parts.append(f"images without a mask in {masks}: {_preview(image_files, lonely_images)}")
        if lonely_masks:
            parts.append(f"masks without an image in {images}: {_preview(mask_files, lonely_masks)}")
        raise DataError("; ".join(parts) + " (masks pair with images by file stem; rename or remove these)")
    if not image_files and not allow_empty:
        raise DataError(f"{images}: no images found (looked for .png .jpg .jpeg .tif .tiff .bmp)")
    return [Pair(stem, image_files[stem], mask_files[stem]) for stem in sorted(image_files)]


def _preview(files: dict[str, Path], stems: list[str], limit: int = 5) -> str:
    names = ", ".join(files[s].name for s in stems[:limit])
    more = len(stems) - limit
    return f"{names} and {more} more" if more > 0 else names
