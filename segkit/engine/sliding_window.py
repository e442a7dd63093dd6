"""Sliding-window prediction at full resolution, Gaussian-blended (nnU-Net's scheme).

Images larger than the model input are covered by overlapping tiles that go through the model
in batches; each tile's softmax is weighted by a Gaussian centred on the tile, so seams vanish.
Smaller images are padded, never stretched. Output size equals input size exactly.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from segkit.data.tiles import pad_to, tile_origins


@lru_cache(maxsize=8)
def gaussian_weights(height: int, width: int, sigma_scale: float = 0.125) -> np.ndarray:
    """``(height, width, 1)`` weights, largest at the centre, never zero (edges still count)."""
    ys = np.arange(height) - (height - 1) / 2
    xs = np.arange(width) - (width - 1) / 2
    gy = np.exp(-(ys**2) / (2 * (sigma_scale * height) ** 2))
    gx = np.exp(-(xs**2) / (2 * (sigma_scale * width) ** 2))
    weights = np.outer(gy, gx)
    weights /= weights.max()
    return np.maximum(weights, 1e-3)[:, :, None].astype(np.float32)


def _predict(model: Any, tiles: np.ndarray, batch_size: int, tta: bool) -> np.ndarray:
    """Softmax of ``tiles``, averaged over flips when ``tta``; one compiled predict function serves all."""
    def run(batch: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(model.predict_on_batch(batch[i : i + batch_size]))
                               for i in range(0, len(batch), batch_size)])

    probabilities = run(tiles)
    if tta:
        probabilities = probabilities + run(tiles[:, :, ::-1])[:, :, ::-1] + run(tiles[:, ::-1])[:, ::-1]
        probabilities /= 3.0
    return probabilities


def predict_full(model: Any, image: np.ndarray, tile: tuple[int, int], *, overlap: float = 0.5,
                 batch_size: int = 8, tta: bool = False) -> np.ndarray:
    """Softmax ``(H, W, K)`` for a uint8 image ``(H, W, C)`` of any size, tiles of the model size."""
    height, width = image.shape[:2]
    padded = pad_to(image, *tile, value=0).astype(np.float32) / 255.0
    origins = tile_origins(padded.shape[:2], tile, overlap)
    th, tw = tile
    tiles = np.stack([padded[y : y + th, x : x + tw] for y, x in origins])
    probabilities = _predict(model, tiles, batch_size, tta)
    weights = gaussian_weights(th, tw)
    total = np.zeros((*padded.shape[:2], probabilities.shape[-1]), np.float32)
    norm = np.zeros((*padded.shape[:2], 1), np.float32)
    for (y, x), p in zip(origins, probabilities):
        total[y : y + th, x : x + tw] += p * weights
        norm[y : y + th, x : x + tw] += weights
    return (total / norm)[:height, :width]
