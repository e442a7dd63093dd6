"""A dataset made of ``images/`` and ``masks/`` folders per split: the reusable DatasetSource.

A split may also have an ``instances/`` folder of instance label images (one per image, same
stem), which makes the dataset a :class:`segkit.specs.InstanceSource`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segkit.classes import ClassTable
from segkit.data.images import image_size, read_image, read_mask
from segkit.data.names import shown_path
from segkit.data.pairing import Pair, pair_by_stem
from segkit.errors import DataError
from segkit.objects.labels import instance_label_size, read_instance_labels, size_mismatch


@dataclass(frozen=True)
class SplitFolders:
    images: Path
    masks: Path
    #: instance label images (ids of the nuclei), one per image with the same stem; None: none
    instances: Path | None = None


class FolderDataset:
    """Pairs images with RGB categorized masks (and instance label images, where a split has
    them) by stem and decodes them to class indices (and ids).

    Mask pixels farther than the class table's tolerance from every class colour are counted
    per file as they are decoded, so :meth:`notes` can report them once for the whole dataset.
    """

    def __init__(self, splits: Mapping[str, SplitFolders], classes: ClassTable, image_channels: int = 3) -> None:
        self._splits = dict(splits)
        self._classes = classes
        self._channels = image_channels
        self._far: dict[Path, int] = {}
        self._lock = threading.Lock()

    def folders(self) -> dict[str, SplitFolders]:
        """The folders behind each split (``segkit stats`` reads them without pairing first)."""
        return dict(self._splits)

    def pairs(self, split: str) -> list[Pair]:
        if split not in self._splits:
            raise DataError(
                f"the dataset has no '{split}' split; add [dataset.{split}] with images and masks folders"
            )
        folders = self._splits[split]
        return pair_by_stem(folders.images, folders.masks, instances=folders.instances)

    def check(self, split: str) -> list[Pair]:
        """The pairs of ``split``, each file's header read and checked, nothing decoded.

        Run before training touches the output folder or imports TensorFlow: empty, foreign,
        truncated (PNG) or mis-sized files fail here in seconds, with the file named, instead of
        minutes later inside tf.data. An instance label file must say integer ids of one channel
        in its header, and have its image's size.
        """
        pairs = self.pairs(split)
        for pair in pairs:
            image = image_size(pair.image, verify=True)
            mask = image_size(pair.mask, verify=True)
            if image != mask:
                raise _size_mismatch(pair, mask, image)
            if pair.instances is not None and (ids := instance_label_size(pair.instances)) != image:
                raise size_mismatch(pair.instances, ids, pair.image, image)
        return pairs

    def load(self, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
        image = read_image(pair.image, self._channels)
        mask, far = read_mask(pair.mask, self._classes)
        if image.shape[:2] != mask.shape:
            raise _size_mismatch(pair, (mask.shape[1], mask.shape[0]), (image.shape[1], image.shape[0]))
        if far:
            with self._lock:
                self._far[pair.mask] = far
        return image, mask

    def instances(self, pair: Pair) -> np.ndarray | None:
        """The instance ids of ``pair`` (``(H, W)`` int32), or None when its split has no instance folder."""
        if pair.instances is None:
            return None
        ids = read_instance_labels(pair.instances)
        image = image_size(pair.image)
        if (ids.shape[1], ids.shape[0]) != image:
            raise size_mismatch(pair.instances, (ids.shape[1], ids.shape[0]), pair.image, image)
        return ids

    def notes(self) -> list[str]:
        """One line about mask pixels far from every class colour, if any were seen."""
        with self._lock:
            if not self._far:
                return []
            total, files = sum(self._far.values()), len(self._far)
        return [
            f"{total} mask pixels in {files} file(s) lie farther than {self._classes.tolerance:g} from every "
            "class colour and were given the nearest class (check the [[classes]] colours or [mask] tolerance)"
        ]


def _size_mismatch(pair: Pair, mask: tuple[int, int], image: tuple[int, int]) -> DataError:
    return DataError(
        f"{shown_path(pair.mask)}: mask is {mask[0]}x{mask[1]} but its image {shown_path(pair.image.name)} is "
        f"{image[0]}x{image[1]}; masks must have their image's size"
    )
