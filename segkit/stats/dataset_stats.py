"""The records ``segkit stats`` reports: one ``SplitStats`` per split inside a ``DatasetStats``.

Plain frozen dataclasses with ``to_json``, apart from the scanning in ``segkit.stats.counts`` that
fills them, so that tables and charts depend on what is reported, not on how it was counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segkit.classes import RGB, ClassTable
from segkit.stats.near_duplicates import DuplicateCluster


@dataclass(frozen=True)
class Problem:
    """A file (or folder) that could not be used, and why, in one line."""

    file: str
    reason: str


@dataclass(frozen=True)
class ClassCount:
    """One class in one split: pixels, share of the non-ignored pixels, masks that contain it."""

    name: str
    color: RGB
    pixels: int
    fraction: float
    images: int


@dataclass(frozen=True)
class Sample:
    """An image/mask pair picked for the montage."""

    split: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class SplitStats:
    """Everything reported about one split; tallies are ``(value, count)``, most frequent first."""

    name: str
    images: int
    masks: int
    pairs: int
    images_without_mask: tuple[str, ...]
    masks_without_image: tuple[str, ...]
    image_sizes: tuple[tuple[tuple[int, int], int], ...]
    image_modes: tuple[tuple[str, int], ...]
    mask_sizes: tuple[tuple[tuple[int, int], int], ...]
    classes: tuple[ClassCount, ...]
    labelled_pixels: int
    ignored_pixels: int
    far_pixels: int
    far_colors: tuple[tuple[RGB, int], ...]
    problems: tuple[Problem, ...]
    #: objects per class name, where the labels are objects (GeoJSON); None for colour masks
    objects: tuple[tuple[str, int], ...] | None = None
    #: label names that match no class, and how many objects carry each
    unknown_classes: tuple[tuple[str, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """This split as plain JSON types; see ``DatasetStats.to_json``."""
        return {
            "name": self.name,
            "images": self.images,
            "masks": self.masks,
            "pairs": self.pairs,
            "images_without_mask": list(self.images_without_mask),
            "masks_without_image": list(self.masks_without_image),
            "image_sizes": [{"width": w, "height": h, "count": n} for (w, h), n in self.image_sizes],
            "image_modes": [{"mode": mode, "count": n} for mode, n in self.image_modes],
            "mask_sizes": [{"width": w, "height": h, "count": n} for (w, h), n in self.mask_sizes],
            "labelled_pixels": self.labelled_pixels,
            "ignored_pixels": self.ignored_pixels,
            "classes": [vars(count) | {"color": list(count.color)} for count in self.classes],
            "far_pixels": self.far_pixels,
            "far_colors": [{"color": list(color), "pixels": n} for color, n in self.far_colors],
            "problems": [vars(problem).copy() for problem in self.problems],
            "objects": None if self.objects is None else [{"class": name, "count": n} for name, n in self.objects],
            "unknown_classes": [{"name": name, "objects": n} for name, n in self.unknown_classes],
        }


@dataclass(frozen=True)
class DatasetStats:
    """All splits, the near-duplicate clusters found across them, and what charts need to draw samples."""

    table: ClassTable
    splits: tuple[SplitStats, ...]
    duplicates: tuple[DuplicateCluster, ...]
    duplicate_threshold: float
    samples: tuple[Sample, ...]

    def to_json(self) -> dict[str, Any]:
        """Plain dicts/lists/numbers only, so ``json.dumps`` takes it as is; keys never depend on data."""
        return {
            "classes": [
                {"index": index, "name": info.name, "color": list(info.color)}
                for index, info in enumerate(self.table.classes)
            ],
            "ignore_color": list(self.table.ignore_color) if self.table.ignore_color else None,
            "tolerance": self.table.tolerance,
            "splits": [split.to_json() for split in self.splits],
            "duplicates": {
                "threshold": self.duplicate_threshold,
                "leaks": sum(cluster.leak for cluster in self.duplicates),
                "clusters": [cluster.to_json() for cluster in self.duplicates],
            },
        }
