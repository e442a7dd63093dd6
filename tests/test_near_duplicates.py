"""Near-duplicate fingerprints: flips, rotations and mild warps match; unrelated tissue does not."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segkit.classes import ClassInfo, ClassTable
from segkit.stats import DEFAULT_THRESHOLD, SplitFolders, collect_stats, find_near_duplicates
from segkit.stats.near_duplicates import FINGERPRINT_SIDE, ImageFingerprint, distance_matrix, fingerprint

SIDE = 256


def _texture(seed: int) -> np.ndarray:
    """Gray tissue-like texture: coarse blobs (what the fingerprint sees) plus fine cell-sized noise."""
    rng = np.random.default_rng(seed)
    blobs = Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8))
    coarse = blobs.resize((SIDE, SIDE), Image.Resampling.BICUBIC)
    fine = rng.normal(0, 25, (SIDE, SIDE))
    return np.clip(np.asarray(coarse, dtype=np.float64) * 0.7 + 40 + fine, 0, 255).astype(np.uint8)


def _warp(image: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Nearest-neighbour resampling at ``(y + dy, x + dx)``, clamped at the border."""
    y, x = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    sy = np.clip(np.rint(y + dy), 0, image.shape[0] - 1).astype(int)
    sx = np.clip(np.rint(x + dx), 0, image.shape[1] - 1).astype(int)
    warped: np.ndarray = image[sy, sx]
    return warped


def _elastic(image: np.ndarray, amplitude: float = 6.0) -> np.ndarray:
    y, x = np.mgrid[0:SIDE, 0:SIDE] / SIDE * 2 * np.pi
    return _warp(image, amplitude * np.sin(1.5 * x + 0.3), amplitude * np.cos(2.0 * y))


def _barrel(image: np.ndarray, strength: float = 0.05) -> np.ndarray:
    """Radial distortion moving the corners by ``strength * 2`` of the half-side (13 px of 256 here)."""
    y, x = (np.mgrid[0:SIDE, 0:SIDE] - SIDE / 2) / (SIDE / 2)
    scale = 1 + strength * (x**2 + y**2)
    return _warp(image, y * (scale - 1) * SIDE / 2, x * (scale - 1) * SIDE / 2)


def _distance(first: np.ndarray, second: np.ndarray) -> float:
    return float(distance_matrix(np.stack([fingerprint(first), fingerprint(second)]))[0, 1])


@pytest.mark.parametrize(
    "transform",
    [np.fliplr, np.flipud, np.rot90, lambda a: np.rot90(a, 3).T, _elastic, _barrel],
    ids=["hflip", "vflip", "rot90", "transpose", "elastic", "barrel"],
)
def test_transformed_copy_is_near(transform: Callable[[np.ndarray], np.ndarray]) -> None:
    original = _texture(1)
    assert _distance(original, np.ascontiguousarray(transform(original))) < DEFAULT_THRESHOLD / 2


def test_warped_and_rotated_copy_is_near_but_unrelated_is_far() -> None:
    original = _texture(1)
    assert _distance(original, np.rot90(_elastic(_barrel(original)))) < DEFAULT_THRESHOLD
    unrelated = [_distance(original, _texture(seed)) for seed in range(2, 8)]
    assert min(unrelated) > 3 * DEFAULT_THRESHOLD


def test_brightness_and_contrast_do_not_matter_and_flat_images_match_nothing() -> None:
    original = _texture(1)
    paler = (original.astype(np.float64) * 0.5 + 120).astype(np.uint8)
    assert _distance(original, paler) < 0.01
    flat = np.full((SIDE, SIDE), 200, dtype=np.uint8)
    assert not fingerprint(flat).any()
    assert _distance(original, flat) == pytest.approx(1.0)


def test_distances_are_symmetric_and_zero_on_the_diagonal() -> None:
    vectors = np.stack([fingerprint(_texture(seed)) for seed in range(5)])
    distances = distance_matrix(vectors)
    assert vectors.shape == (5, FINGERPRINT_SIDE**2)
    np.testing.assert_allclose(distances, distances.T, atol=1e-5)
    np.testing.assert_allclose(np.diag(distances), 0.0, atol=1e-5)


def test_thousand_images_are_compared_fast_and_the_planted_copy_is_found() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(1000, FINGERPRINT_SIDE**2)).astype(np.float32)
    vectors -= vectors.mean(axis=1, keepdims=True)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    square = vectors[10].reshape(FINGERPRINT_SIDE, FINGERPRINT_SIDE)
    vectors[990] = np.rot90(square).ravel()  # a rotated copy of image 10
    prints = [ImageFingerprint(f"{i}.png", "train" if i < 500 else "test", v) for i, v in enumerate(vectors)]
    started = time.perf_counter()
    clusters = find_near_duplicates(prints)
    assert time.perf_counter() - started < 2.0
    found = [(c.members, c.leak) for c in clusters]
    assert found == [((("test", "990.png"), ("train", "10.png")), True)]
    assert clusters[0].max_distance == pytest.approx(0.0, abs=1e-4)


def test_leakage_is_flagged_only_across_splits(tmp_path: Path) -> None:
    original = _texture(1)
    files = {
        ("train", "orig"): original,
        ("train", "flipped"): np.fliplr(original),
        ("test", "rotated"): _elastic(np.rot90(original)),
        ("test", "other"): _texture(2),
    }
    for (split, stem), gray in files.items():
        folder = tmp_path / split / "images"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2)).save(folder / f"{stem}.png")
    table = ClassTable((ClassInfo("background", (0, 0, 0)),))
    splits = {n: SplitFolders(tmp_path / n / "images", tmp_path / n / "masks") for n in ("train", "test")}
    stats = collect_stats(splits, table, workers=1)
    # the three copies form one cluster (other.png matches nothing), leaking from train into test
    found = [(c.members, c.splits, c.leak) for c in stats.duplicates]
    assert found == [
        ((("test", "rotated.png"), ("train", "flipped.png"), ("train", "orig.png")), {"test": 1, "train": 2}, True),
    ]
    assert stats.to_json()["duplicates"]["leaks"] == 1
