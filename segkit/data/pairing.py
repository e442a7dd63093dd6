"""Pairing images with masks by file stem, never by list order."""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from segkit.data.images import IMAGE_SUFFIXES, is_image_name
from segkit.data.names import is_loop, link_target, quoted, refuse_loop, shown_path
from segkit.errors import DataError


@dataclass(frozen=True)
class Pair:
    stem: str
    image: Path
    mask: Path
    #: the file of the image's instance ids, where the split has an instance folder
    instances: Path | None = None


@dataclass(frozen=True)
class Rejected:
    """A folder entry named like an image that cannot be one, and its own problem in one phrase."""

    path: Path
    problem: str

    def error(self) -> DataError:
        return DataError(f"{shown_path(self.path)}: {self.problem}")


@dataclass(frozen=True)
class ImageFolder:
    """The image files directly in a folder, sorted by name, and the entries that only look like one."""

    folder: Path
    files: list[Path]
    rejected: list[Rejected]


def scan_image_folder(folder: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> ImageFolder:
    """Every entry of ``folder`` with one of ``suffixes``, sorted into files and rejected entries.

    A folder, broken or looping link or a pipe named ``x.png`` is reported as what it is: left out
    silently, it would make its mask look like the file at fault.
    """
    _check_folder(folder)
    files: list[Path] = []
    rejected: list[Rejected] = []
    for entry in sorted(folder.iterdir()):
        if not is_image_name(entry, suffixes):
            continue
        problem = _entry_problem(entry)
        if problem is None:
            files.append(entry)
        else:
            rejected.append(Rejected(entry, problem))
    return ImageFolder(folder, files, rejected)


def _check_folder(folder: Path) -> None:
    if folder.is_dir():
        return
    refuse_loop(folder)
    if folder.is_symlink():
        raise DataError(f"{shown_path(folder)}: is a broken symbolic link (its target "
                        f"{link_target(folder)} does not exist; fix the link or the project's path)")
    what = "is a file, not a folder" if folder.exists() else "does not exist"
    raise DataError(f"{shown_path(folder)}: {what}; point the project at the folder that holds the images")


def _entry_problem(entry: Path) -> str | None:
    """Why ``entry`` (named like an image) cannot be read as an image file; None when it can be tried."""
    try:
        mode = entry.stat().st_mode
    except OSError as exc:
        if is_loop(exc):
            return "is a symbolic link loop (the link leads back to itself; fix or remove it)"
        if entry.is_symlink():
            return (f"is a broken symbolic link (its target {link_target(entry)} does not exist; "
                    "fix or remove the link)")
        return f"cannot be read ({exc.strerror}; check it or remove it from the folder)"
    if stat.S_ISDIR(mode):
        return "is a folder, not an image file (move it out of the folder, or drop the image suffix from its name)"
    if not stat.S_ISREG(mode):
        return "is not a regular file but a pipe, socket or device (remove it from the folder)"
    return None


def check_stems(listing: ImageFolder) -> None:
    """Refuse two files of one stem (``a.png`` and ``a.tif``): each image must pair with one mask."""
    seen: dict[str, Path] = {}
    for path in listing.files:
        if path.stem in seen:
            raise DataError(
                f"{shown_path(listing.folder)}: {quoted(seen[path.stem].name)} and {quoted(path.name)} "
                f"share the stem {quoted(path.stem)}; keep one of them so each image pairs with exactly one mask"
            )
        seen[path.stem] = path


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; a rejected entry or a shared stem is an error."""
    listing = scan_image_folder(folder)
    if listing.rejected:
        raise listing.rejected[0].error()
    check_stems(listing)
    return listing.files


def pair_by_stem(images: Path, masks: Path, *, instances: Path | None = None,
                 allow_empty: bool = False) -> list[Pair]:
    """Pairs of ``images/<stem>.*`` and ``masks/<stem>.*`` (and ``instances/<stem>.*`` when given);
    unpaired files are listed in the error."""
    image_files = {p.stem: p for p in list_images(images)}
    mask_files = _partners(image_files, images, masks, "a mask", "masks")
    instance_files = {} if instances is None else _partners(
        image_files, images, instances, "an instance label file", "instance label files")
    if not image_files and not allow_empty:
        raise DataError(f"{shown_path(images)}: no images found (looked for .png .jpg .jpeg .tif .tiff .bmp)")
    return [Pair(stem, image_files[stem], mask_files[stem], instance_files.get(stem)) for stem in sorted(image_files)]


def _partners(image_files: dict[str, Path], images: Path, folder: Path, one: str, many: str) -> dict[str, Path]:
    """The files of ``folder`` by stem, one for each of ``image_files`` and no other (``one`` of
    them / ``many`` of them name them in the error)."""
    files = {p.stem: p for p in list_images(folder)}
    lonely_images = sorted(set(image_files) - set(files))
    lonely_files = sorted(set(files) - set(image_files))
    if lonely_images or lonely_files:
        parts = []
        if lonely_images:
            parts.append(f"images without {one} in {shown_path(folder)}: {_preview(image_files, lonely_images)}")
        if lonely_files:
            parts.append(f"{many} without an image in {shown_path(images)}: {_preview(files, lonely_files)}")
        raise DataError("; ".join(parts) + f" ({many} pair with images by file stem; rename or remove these)")
    return files


def _preview(files: dict[str, Path], stems: list[str], limit: int = 5) -> str:
    names = ", ".join(shown_path(files[s].name) for s in stems[:limit])
    more = len(stems) - limit
    return f"{names} and {more} more" if more > 0 else names
