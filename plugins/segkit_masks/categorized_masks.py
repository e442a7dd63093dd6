"""The ``categorized-masks`` dataset: ``[dataset.train|valid|test]`` each with images and masks folders."""

from __future__ import annotations

from segkit.plugin import DatasetRequest, FolderDataset, Option, SplitFolders

_FOLDERS = (
    Option("images", "dir", help="folder of images (.png .jpg .jpeg .tif .tiff .bmp)"),
    Option("masks", "dir", help="folder of RGB masks, one per image with the same file stem"),
)
SPLIT_OPTIONS = tuple(
    Option(split, "table", None, f"the {split} split", fields=_FOLDERS) for split in ("train", "valid", "test")
)


def open_categorized_masks(request: DatasetRequest) -> FolderDataset:
    splits = {
        split: SplitFolders(folders["images"], folders["masks"])
        for split, folders in request.options.items()
        if folders is not None
    }
    return FolderDataset(splits, request.classes, request.image_channels)
