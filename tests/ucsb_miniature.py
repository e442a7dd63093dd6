"""A miniature of the UCSB breast-cancer-cell download, for the ``ucsb-bcc`` preparer's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

H, W = 32, 40
CORES = {"ytma10_010704": "benign", "ytma12_010804": "malignant", "ytma23_022103": "malignant",
         "ytma49_042003": "malignant"}
COLOURS = {"benign": (0, 255, 0), "malignant": (255, 0, 0)}
WHITE = (255, 255, 255)
# (top, left, bottom, right) inclusive: the two blobs of every mask, shifted by the image number.
BLOBS = ((5, 6, 8, 10), (14, 20, 17, 25))


def _blobs(shift: int) -> list[tuple[int, int, int, int]]:
    return [(top + shift, left + shift, bottom + shift, right + shift) for top, left, bottom, right in BLOBS]


def make_ucsb(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A miniature of the download: 4 cores x 2 images; stem -> (image, 8-bit mask as written)."""
    (root / "Images").mkdir(parents=True)
    (root / "Masks").mkdir()
    rng = np.random.default_rng(5)
    written = {}
    for core, label in CORES.items():
        for n in (1, 2):
            stem = f"{core}_{label}{n}"
            image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            mask = np.zeros((H, W), np.uint8)
            for top, left, bottom, right in _blobs(n - 1):
                mask[top: bottom + 1, left: right + 1] = 255
            # Off-white and off-black values, as in the masks rebuilt from JPEG copies.
            mask[6, 7], mask[15, 21] = 128, 127
            Image.fromarray(image).save(root / "Images" / f"{stem}_ccd.tif")
            Image.fromarray(mask).save(root / "Masks" / f"{stem}.TIF")
            written[stem] = (image, mask)
    return written
