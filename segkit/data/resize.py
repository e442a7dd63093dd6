"""Resizing uint8 images (bilinear) and class-index masks (nearest) with Pillow."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(H, W, C)`` uint8 -> ``(height, width, C)`` uint8, bilinear."""
    if image.shape[:2] == (height, width):
        return image
    channels = [
        np.asarray(Image.fromarray(image[:, :, c]).resize((width, height), Image.Resampling.BILINEAR))
        for c in range(image.shape[2])
    ]
    return np.stack(channels, axis=2)


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(H, W)`` class indices -> ``(height, width)``, nearest neighbour (no invented classes)."""
    if mask.shape == (height, width):
        return mask
    return np.asarray(Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST))


def blend(image: np.ndarray, colours: np.ndarray, foreground: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Overlay of an RGB colour mask on an image where ``foreground`` is true; elsewhere the image."""
    rgb = image if image.shape[2] == 3 else np.repeat(image, 3, axis=2)
    mixed = (1 - alpha) * rgb.astype(np.float32) + alpha * colours.astype(np.float32)
    return np.where(foreground[:, :, None], mixed, rgb).clip(0, 255).astype(np.uint8)


def montage(rows: list[list[np.ndarray]], gap: int = 4) -> np.ndarray:
    """Grid of equally sized RGB tiles, one list per row, separated by white gaps."""
    height, width = rows[0][0].shape[:2]
    columns = max(len(r) for r in rows)
    canvas = np.full(
        (len(rows) * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, dtype=np.uint8
    )
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            rgb = tile if tile.shape[2] == 3 else np.repeat(tile, 3, axis=2)
            top, left = r * (height + gap), c * (width + gap)
            canvas[top : top + height, left : left + width] = resize_image(rgb, height, width)
    return canvas
