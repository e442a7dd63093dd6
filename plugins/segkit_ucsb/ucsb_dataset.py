"""The ``ucsb-bcc`` dataset: a prepared UCSB folder (``segkit prepare ucsb-bcc``) that knows each image's core.

The split folders are read as any folder dataset's; what this dataset adds is the group of every
image, its tissue core, read from the file name (``ytma49_042003_malignant1`` -> ``ytma49_042003``),
so ``[cv] group_by = "dataset"`` never puts two views of one core into different folds.
"""

from __future__ import annotations

from segkit.plugin import DatasetRequest, FolderDataset, Option, Pair, SplitFolders
from segkit_ucsb.ucsb_layout import parse_stem

_FOLDERS = (
    Option("images", "dir", help="folder of prepared images, <core>_<benign|malignant><n>.png"),
    Option("masks", "dir", help="folder of their RGB masks, same stems"),
)
UCSB_SPLITS = tuple(Option(split, "table", None, f"the {split} split of the prepared folder", fields=_FOLDERS)
                    for split in ("train", "valid", "test"))


class UcsbDataset(FolderDataset):
    """A folder dataset whose images are grouped by the tissue core their name starts with."""

    def group(self, pair: Pair) -> str:
        """The core of ``pair``; a DataError naming the file when its name does not say one."""
        return parse_stem(pair.stem, pair.image)[0]


def open_ucsb(request: DatasetRequest) -> UcsbDataset:
    splits = {split: SplitFolders(folders["images"], folders["masks"])
              for split, folders in request.options.items() if folders is not None}
    return UcsbDataset(splits, request.classes, request.image_channels)
