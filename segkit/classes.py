"""The class table: the single source of truth for names, colours, palettes and mask decoding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Class index written for pixels that must not count in loss or metrics.
IGNORE_INDEX = 255

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class ClassInfo:
    """One row of ``[[classes]]``: its index is its position in the table."""

    name: str
    color: RGB


@dataclass(frozen=True)
class ClassTable:
    """Ordered classes plus the optional ignore colour and the colour tolerance of ``[mask]``.

    What plugins receive as ``request.classes`` (datasets, metrics, callbacks; import it from
    :mod:`segkit.plugin`). A class's index is its position in ``classes``, the order of the
    project's ``[[classes]]``, and a model's output channel ``i`` is class ``i``. ``decode``
    turns an RGB mask into those indices (a dataset's ``load`` returns masks decoded), with
    :data:`IGNORE_INDEX` for pixels nearest the ignore colour; ``colorize`` goes back, and
    ``palette`` gives the colours as a ``(num_classes, 3)`` uint8 array. ``tolerance`` is how far
    (RGB distance) a mask colour may lie from its class colour before ``decode`` counts it.
    """

    classes: tuple[ClassInfo, ...]
    ignore_color: RGB | None = None
    tolerance: float = 60.0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def palette(self) -> np.ndarray:
        """``(num_classes, 3)`` uint8 colours, index = class."""
        return np.array([c.color for c in self.classes], dtype=np.uint8)

    def colorize(self, indices: np.ndarray) -> np.ndarray:
        """Class-index array ``(H, W)`` -> RGB ``(H, W, 3)``; ignored pixels become the ignore colour (or white)."""
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[: self.num_classes] = self.palette()
        lut[IGNORE_INDEX] = self.ignore_color if self.ignore_color is not None else (255, 255, 255)
        return lut[indices.astype(np.uint8)]

    def decode(self, rgb: np.ndarray) -> tuple[np.ndarray, int]:
        """RGB mask ``(H, W, 3)`` -> class indices ``(H, W)`` uint8 by nearest colour.

        Returns the indices and how many pixels lay farther than ``tolerance`` from every colour
        (they still get the nearest class; the caller reports the count). Pixels nearest to the
        ignore colour get ``IGNORE_INDEX``.
        """
        # Most masks hold a handful of distinct colours: decode those once, not every pixel.
        unique_rgb, counts, inverse = distinct_colors(rgb)
        dist = self._distances(unique_rgb)
        nearest = dist.argmin(axis=1)
        far = dist.min(axis=1) > self.tolerance
        lut = np.array(self._targets(), dtype=np.uint8)[nearest]
        return lut[inverse].reshape(rgb.shape[:2]), int(counts[far].sum())

    def within_tolerance(self, colors: np.ndarray) -> np.ndarray:
        """Which of the ``(K, 3)`` colours lie within ``tolerance`` of a class or the ignore colour."""
        matched: np.ndarray = self._distances(colors).min(axis=1) <= self.tolerance
        return matched

    def _known_colors(self) -> list[RGB]:
        colors = [c.color for c in self.classes]
        return colors if self.ignore_color is None else [*colors, self.ignore_color]

    def _targets(self) -> list[int]:
        """The class index of each of :meth:`_known_colors`."""
        targets = [*range(self.num_classes)]
        return targets if self.ignore_color is None else [*targets, IGNORE_INDEX]

    def _distances(self, colors: np.ndarray) -> np.ndarray:
        """``(K, len(known colours))`` Euclidean RGB distances."""
        known = np.array(self._known_colors(), dtype=np.float64)
        distances: np.ndarray = np.linalg.norm(colors.astype(np.float64)[:, None, :] - known[None, :, :], axis=2)
        return distances


def distinct_colors(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct colours ``(K, 3)`` of an RGB array, their pixel counts, and each pixel's colour number."""
    flat = rgb.reshape(-1, 3).astype(np.int32)
    packed = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    unique, inverse = np.unique(packed, return_inverse=True)
    unique_rgb = np.stack([(unique >> 16) & 255, (unique >> 8) & 255, unique & 255], axis=1)
    return unique_rgb, np.bincount(inverse.ravel(), minlength=len(unique)), inverse.ravel()


def safe_name(name: str) -> str:
    """A class name as it may appear in a metric name and a CSV column."""
    return "".join(ch if ch.isalnum() else "_" for ch in name.strip().lower()) or "class"


def safe_names(names: Sequence[str]) -> list[str]:
    """:func:`safe_name` of each class, made distinct: "tumour a" and "tumour-a" are both
    ``tumour_a``, and two metrics of one name would share a column. A repeat gets its class index."""
    result: list[str] = []
    for index, name in enumerate(names):
        safe = safe_name(name)
        while safe in result:
            safe = f"{safe}_{index}"
        result.append(safe)
    return result
