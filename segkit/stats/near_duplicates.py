"""Near-duplicate images and train/test leakage, robust to flips, 90° rotations and mild warps.

Each image becomes a tiny gray thumbnail (``FINGERPRINT_SIDE`` pixels a side, box-averaged) with its
mean and contrast removed, so the near-uniform pink/purple of H&E tiles carries no weight and only
the layout of light and dark tissue counts. Two images are compared by Pearson correlation of their
thumbnails, taking the best of the eight flips/rotations of one of them:
``distance = 1 - max correlation`` (0 = identical layout, 1 = unrelated, 2 = inverted).

Box-averaging to 16x16 is what makes this robust to elastic and barrel distortion: a displacement of
10-20 px on a 512 px tile moves content by well under one thumbnail cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

#: Side of the square thumbnail a fingerprint is made of.
FINGERPRINT_SIDE = 16

#: Distances at or below this are reported. Measured on the shared data: deformed copies of one
#: original (bcc-mini among themselves, and bcc-mini tiles against their 896x768 ucsb originals) lie
#: at 0.002-0.04; the closest unrelated pair at 0.24, most above 0.35. 0.1 splits the gap.
DEFAULT_THRESHOLD = 0.1
#: Unrelated images lie near distance 1; a threshold above it would join everything.
MAX_THRESHOLD = 1.0

#: Distance-matrix entries computed per block, bounding memory (64 MiB of float32) for any N.
_BLOCK_ENTRIES = 1 << 24


@dataclass(frozen=True)
class ImageFingerprint:
    """One image's identity (file name and split) and its ``fingerprint`` vector."""

    name: str
    split: str
    vector: np.ndarray


@dataclass(frozen=True)
class DuplicateCluster:
    """Images whose layouts match up to a flip/rotation, directly or through a chain of matches.

    ``members`` are ``(split, name)`` pairs, sorted; ``max_distance`` is the largest distance among
    the matches that joined them (0: exact copies). One cluster per group, however many copies it
    holds: 300 copies of one tile are one row, not 44,850 pairs.
    """

    members: tuple[tuple[str, str], ...]
    max_distance: float

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def splits(self) -> dict[str, int]:
        """Members per split, in split-name order."""
        counts: dict[str, int] = {}
        for split, _ in self.members:
            counts[split] = counts.get(split, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def leak(self) -> bool:
        """The same content sits in more than one split (train/test leakage)."""
        return len(self.splits) > 1

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "leak": self.leak,
            "splits": [{"split": split, "count": n} for split, n in self.splits.items()],
            "max_distance": self.max_distance,
            "members": [{"split": split, "name": name} for split, name in self.members],
        }


def fingerprint(gray: np.ndarray) -> np.ndarray:
    """Gray image ``(H, W)`` or ``(H, W, 1)`` uint8 -> ``FINGERPRINT_SIDE**2`` float32, zero mean, unit norm.

    A flat image (no contrast at all) gets the zero vector, which is at distance 1 from everything.
    """
    plane = gray[:, :, 0] if gray.ndim == 3 else gray
    side = (FINGERPRINT_SIDE, FINGERPRINT_SIDE)
    small = np.asarray(Image.fromarray(plane).resize(side, Image.Resampling.BOX), dtype=np.float32)
    centred = small.ravel() - small.mean()
    norm = float(np.linalg.norm(centred))
    return centred / norm if norm > 1e-6 else np.zeros_like(centred)


def dihedral_variants(vectors: np.ndarray) -> np.ndarray:
    """``(N, side*side)`` fingerprints -> ``(N, 8, side*side)``: 4 rotations, each also mirrored."""
    squares = vectors.reshape(len(vectors), FINGERPRINT_SIDE, FINGERPRINT_SIDE)
    variants = []
    for quarter_turns in range(4):
        rotated = np.rot90(squares, quarter_turns, axes=(1, 2))
        variants += [rotated, rotated[:, :, ::-1]]
    return np.stack(variants, axis=1).reshape(len(vectors), 8, -1)


def distance_matrix(vectors: np.ndarray) -> np.ndarray:
    """All-pairs ``(N, N)`` distances; fine for a few thousand images, ``find_near_duplicates`` for more."""
    variants = dihedral_variants(vectors).reshape(-1, vectors.shape[1])
    return _block_distances(vectors, variants)


def find_near_duplicates(
    prints: Sequence[ImageFingerprint], threshold: float = DEFAULT_THRESHOLD
) -> list[DuplicateCluster]:
    """Clusters of images at distance ``<= threshold``, joined transitively; leaks first, then largest.

    Images with the very same fingerprint (exact copies) are bucketed first and compared once, so
    many copies of one tile cost one comparison, not one per pair; memory stays bounded for any N.
    """
    if len(prints) < 2:
        return []
    vectors = np.stack([p.vector for p in prints]).astype(np.float32)
    bucket_of, firsts = _exact_buckets(vectors)
    components = _Components(len(firsts))
    representatives = vectors[firsts]
    variants = dihedral_variants(representatives).reshape(-1, vectors.shape[1])
    block = max(1, _BLOCK_ENTRIES // len(variants))
    for start in range(0, len(firsts), block):
        distances = _block_distances(representatives[start : start + block], variants)
        rows, cols = np.nonzero(distances <= threshold)
        later = cols > rows + start  # each unordered pair once, never a bucket with itself
        rows, cols = rows[later], cols[later]
        components.merge(rows + start, cols, distances[rows, cols])
    return _clusters(prints, bucket_of, components)


def _exact_buckets(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image -> bucket index of identical fingerprints, and each bucket's first image.

    A flat image (zero vector) has no layout to compare, so it gets a bucket of its own: blank
    tiles are not copies of each other.
    """
    seen: dict[bytes, int] = {}
    bucket_of = np.empty(len(vectors), dtype=np.int64)
    firsts: list[int] = []
    for index, vector in enumerate(vectors):
        key = vector.tobytes() if vector.any() else index.to_bytes(8, "little") + b"flat"
        if key not in seen:
            seen[key] = len(firsts)
            firsts.append(index)
        bucket_of[index] = seen[key]
    return bucket_of, np.array(firsts, dtype=np.int64)


def _clusters(
    prints: Sequence[ImageFingerprint], bucket_of: np.ndarray, components: _Components
) -> list[DuplicateCluster]:
    """Every component holding two images or more, as a ``DuplicateCluster``."""
    roots = components.roots(bucket_of)
    reach = components.reach[bucket_of]
    groups: dict[int, list[int]] = {}
    for index, root in enumerate(roots.tolist()):
        groups.setdefault(root, []).append(index)
    clusters = [
        DuplicateCluster(
            members=tuple(sorted((prints[i].split, prints[i].name) for i in members)),
            max_distance=round(float(reach[members].max()), 4),
        )
        for members in groups.values()
        if len(members) > 1
    ]
    return sorted(clusters, key=lambda c: (not c.leak, -c.size, c.max_distance, c.members))


class _Components:
    """Connected components of ``n`` nodes, merged one batch of edges at a time with numpy.

    A union-find whose roots always point to a lower index (so no cycles): a batch hooks each
    edge's higher root under its lower one, paths are halved until every node points at its
    root, and the batch repeats for the edges that still join two components. No Python loop
    per edge, so tens of thousands of matching pairs cost milliseconds.
    """

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n, dtype=np.int64)
        #: Largest distance of a match touching each node: a cluster's is the max over its nodes.
        self.reach = np.zeros(n, dtype=np.float32)

    def roots(self, nodes: np.ndarray) -> np.ndarray:
        while True:
            grand = self.parent[self.parent]
            if np.array_equal(grand, self.parent):
                return self.parent[nodes]
            self.parent = grand

    def merge(self, first: np.ndarray, second: np.ndarray, distances: np.ndarray) -> None:
        np.maximum.at(self.reach, first, distances)
        np.maximum.at(self.reach, second, distances)
        while first.size:
            a, b = self.roots(first), self.roots(second)
            apart = a != b
            first, second, a, b = first[apart], second[apart], a[apart], b[apart]
            np.minimum.at(self.parent, np.maximum(a, b), np.minimum(a, b))


def _block_distances(rows: np.ndarray, variants: np.ndarray) -> np.ndarray:
    """``rows`` ``(B, D)`` against all images' 8 variants ``(8N, D)`` -> ``(B, N)`` best-variant distances."""
    correlations = rows @ variants.T
    best = correlations.reshape(len(rows), -1, 8).max(axis=2)
    distances: np.ndarray = np.clip(1.0 - best, 0.0, 2.0)
    return distances
