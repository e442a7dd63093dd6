"""The ``categorized-masks`` dataset: ``[dataset.train|valid|test]`` each with images and masks folders,
and optionally an instances folder of instance label images (the nuclei's ids)."""

from __future__ import annotations

from collections.abc import Mapping

from segkit.plugin import (
    ClassTable,
    DataError,
    DatasetRequest,
    FolderDataset,
    Option,
    Pair,
    SplitFolders,
    distinct_colors,
    read_mask_source,
)

_FOLDERS = (
    Option("images", "dir", help="folder of images (.png .jpg .jpeg .tif .tiff .bmp)"),
    Option("masks", "dir", help="folder of RGB masks, one per image with the same file stem"),
    Option("instances", "dir", None, "folder of instance label images (integer ids, 0 off nuclei; 16/32-bit TIFF "
           "or 8/16-bit grey PNG), one per image with the same file stem; without it the objects are the "
           "masks' connected components per class"),
)
SPLIT_OPTIONS = tuple(
    Option(split, "table", None, f"the {split} split", fields=_FOLDERS) for split in ("train", "valid", "test")
)
#: how many of the most frequent colours an error about unmatched masks lists
SHOWN_COLORS = 5


class CategorizedMasks(FolderDataset):
    """Folders of images and RGB masks whose colours are the project's class colours.

    :meth:`check` also refuses a split in which no mask pixel is near any class (or the ignore)
    colour: decoding would give every pixel its nearest class and train on garbage.
    """

    def __init__(self, splits: Mapping[str, SplitFolders], classes: ClassTable, image_channels: int = 3) -> None:
        super().__init__(splits, classes, image_channels)
        self._table = classes

    def check(self, split: str) -> list[Pair]:
        pairs = super().check(split)
        _check_colors_match(split, self.folders()[split], pairs, self._table)
        return pairs


def _check_colors_match(split: str, folders: SplitFolders, pairs: list[Pair], table: ClassTable) -> None:
    """Decode masks until one holds a pixel near a known colour: one file on a sound split,
    every file (what the first epoch would read anyway) on a split that matches nothing."""
    seen: dict[tuple[int, int, int], int] = {}
    for pair in pairs:
        source = read_mask_source(pair.mask, table)
        if source.ndim == 2:  # class indices already, every value below the number of classes
            return
        colors, counts, _ = distinct_colors(source)
        if table.within_tolerance(colors).any():
            return
        for color, count in zip(colors.tolist(), counts.tolist()):
            seen[tuple(color)] = seen.get(tuple(color), 0) + count
    if pairs:
        raise _no_class_color(split, folders, seen, table)


def _no_class_color(split: str, folders: SplitFolders, seen: Mapping[tuple[int, int, int], int],
                    table: ClassTable) -> DataError:
    total = sum(seen.values())
    common = sorted(seen.items(), key=lambda item: -item[1])[:SHOWN_COLORS]
    found = ", ".join(f"{list(color)} ({count / total:.0%})" for color, count in common)
    more = f" and {len(seen) - SHOWN_COLORS} more" if len(seen) > SHOWN_COLORS else ""
    known = "class colour" + (" or the ignore colour" if table.ignore_color is not None else "")
    return DataError(
        f"dataset.{split}.masks: {folders.masks}: no pixel of the {split} masks lies within "
        f"{table.tolerance:g} of a {known}; they hold {found}{more} (set the [[classes]] colours to the "
        "masks' colours, point the split at its masks folder, or raise [mask] tolerance)"
    )


def open_categorized_masks(request: DatasetRequest) -> FolderDataset:
    splits = {
        split: SplitFolders(folders["images"], folders["masks"], folders["instances"])
        for split, folders in request.options.items()
        if folders is not None
    }
    return CategorizedMasks(splits, request.classes, request.image_channels)
