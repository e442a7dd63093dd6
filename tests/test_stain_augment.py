"""Colour augmentation: HED jitter changes each stain's amount by one affine map per window and
leaves an image alone at strength 0; RGB jitter is one affine map per channel; both reach the
pipeline from ``[augment]`` and the mask never changes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from segkit.data.stain_augment import HED_FROM_RGB, RGB_FROM_HED, channel_jitter, hed_jitter
from segkit.errors import ProjectError
from pipeline_helpers import epochs_of, settings, source_for, write_pairs
from tiny_data import write_tiny_project

tf = pytest.importorskip("tensorflow")


@pytest.fixture(autouse=True)
def global_seed() -> None:
    """The training pipeline refuses TensorFlow's global seed 0, which an earlier test may have left."""
    tf.random.set_seed(3)


def stained(seed: int, size: int = 32) -> np.ndarray:
    """An RGB image drawn from varied haematoxylin and eosin amounts (a constant trace of DAB, so
    that no jitter drives an amount below zero)."""
    rng = np.random.default_rng(seed)
    amounts = np.stack([rng.uniform(0.3, 1.0, (size, size)), rng.uniform(0.25, 0.6, (size, size)),
                        np.full((size, size), 0.25)], axis=-1)
    rgb = 256.0 * np.exp(-amounts @ RGB_FROM_HED) - 1.0
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def amounts_of(rgb: np.ndarray) -> np.ndarray:
    return -np.log((rgb.astype(np.float64) + 1.0) / 256.0) @ HED_FROM_RGB


def seed(a: int, b: int = 0) -> object:
    return tf.constant([a, b], tf.int64)


def test_hed_jitter_scales_and_shifts_each_stain_by_one_map_within_its_strength() -> None:
    image = stained(1)
    before = amounts_of(image)  # what the uint8 image holds, rounding included
    strength = 0.2
    maps = []
    for k in range(6):
        jittered = hed_jitter(tf.constant(image), strength, seed(k), tf).numpy()
        kept = ((jittered > 0) & (jittered < 255)).all(axis=-1)  # a clipped pixel has lost its amounts
        assert kept.mean() > 0.9
        after = amounts_of(jittered)[kept]
        for stain in range(3):
            design = np.stack([before[kept][:, stain], np.ones(kept.sum())], axis=1)
            (scale, shift), *_ = np.linalg.lstsq(design, after[:, stain], rcond=None)
            if stain < 2:  # haematoxylin and eosin vary across the image, so the map is identifiable
                assert np.abs(design @ (scale, shift) - after[:, stain]).max() < 0.05  # rounding only
                assert 1 - strength - 0.02 < scale < 1 + strength + 0.02
                maps.append((scale, shift))
            assert -strength - 0.02 < shift < strength + 0.02
    scales = np.array(maps)[:, 0]
    assert np.ptp(scales) > strength / 2  # windows really get different stains


def test_hed_jitter_at_strength_zero_and_same_seed() -> None:
    image = np.random.default_rng(3).integers(0, 256, (16, 16, 3)).astype(np.uint8)
    image[0, 0], image[0, 1] = (0, 0, 0), (255, 255, 255)
    np.testing.assert_array_equal(hed_jitter(tf.constant(image), 0.0, seed(5), tf).numpy(), image)
    first, again = (hed_jitter(tf.constant(image), 0.3, seed(5), tf).numpy() for _ in range(2))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, hed_jitter(tf.constant(image), 0.3, seed(6), tf).numpy())


def test_channel_jitter_is_one_affine_map_per_channel() -> None:
    image = np.random.default_rng(4).integers(60, 200, (16, 16, 3)).astype(np.uint8)
    strength = 0.1
    out = channel_jitter(tf.constant(image), strength, seed(2), tf).numpy().astype(float)
    for c in range(3):
        design = np.stack([image[..., c].ravel(), np.ones(256)], axis=1).astype(float)
        (scale, shift), *_ = np.linalg.lstsq(design, out[..., c].ravel(), rcond=None)
        assert np.abs(design @ (scale, shift) - out[..., c].ravel()).max() <= 1.0  # truncation to uint8
        assert abs(scale - 1) <= strength + 0.01 and abs(shift) <= strength * 255 + 1


def test_hed_jitter_reaches_training_only_and_keeps_masks(tmp_path: Path) -> None:
    from segkit.engine.pipeline_settings import pipeline_settings
    from segkit.project import load_project

    project = load_project(write_tiny_project(tmp_path), ["augment.enabled=true", "augment.stain_jitter=0",
                                                          "augment.hed_jitter=0.25"])
    augment = pipeline_settings(project, training=True).augment
    assert augment is not None and (augment.hed_jitter, augment.stain_jitter) == (0.25, 0.0)
    assert pipeline_settings(project, training=False).augment is None
    image = stained(2, 16)
    label = np.zeros((16, 16), np.uint8)
    label[4:12, 4:12] = 2
    write_pairs(tmp_path / "data", [image], [label])
    how = settings(batch_size=1, augment=dataclasses.replace(augment, flips=False, rotate90=False))
    changed = 0
    for epoch in epochs_of(source_for(tmp_path / "data"), how, 0, 4):
        x, y = epoch[0]
        np.testing.assert_array_equal(y[0].argmax(-1), label)
        changed += not np.array_equal(np.rint(x[0] * 255).astype(np.uint8), image)
    assert changed == 4


def test_hed_jitter_needs_rgb(tmp_path: Path) -> None:
    from segkit.project import load_project

    with pytest.raises(ProjectError, match=r"augment\.hed_jitter: needs RGB images"):
        load_project(write_tiny_project(tmp_path), ["augment.hed_jitter=0.1", "model.image_channels=1"])
