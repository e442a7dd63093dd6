"""The tf.data pipeline: equal to the eager decode, one-hot round trip, resumable epochs, cache,
augmentation that moves image and mask together, crop mode, turns and zoom, and mixed precision training."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from segkit.classes import IGNORE_INDEX
from segkit.data.pipeline import NO_AUGMENT, load_resized, make_dataset, make_training_dataset
from pipeline_helpers import (
    TABLE, WHITE, assert_same, batches, epochs_of, random_pairs, settings, source_for, write_pairs,
)
from tiny_data import write_tiny_project


def test_pipeline_output_equals_the_eager_decode(tmp_path: Path) -> None:
    images, labels = random_pairs(5, 24, 20)  # resized to 16x16 (bilinear image, nearest mask)
    write_pairs(tmp_path, images, labels)
    source = source_for(tmp_path)
    pairs = source.pairs("train")
    got = batches(make_dataset(source, pairs, settings()))
    assert [len(b[0]) for b in got] == [3, 2]
    x = np.concatenate([b[0] for b in got])
    y = np.concatenate([b[1] for b in got])
    eager = [load_resized(source, pair, 16, 16) for pair in pairs]
    expected_x = np.stack([image.astype(np.float32) / np.float32(255) for image, _ in eager])
    expected_y = np.stack([np.eye(3, dtype=np.float32)[mask] for _, mask in eager])
    assert x.dtype == np.float32 and y.dtype == np.float32
    assert x.shape == (5, 16, 16, 3) and y.shape == (5, 16, 16, 3)
    np.testing.assert_array_equal(x, expected_x)
    np.testing.assert_array_equal(y, expected_y)
    # and the eager decode is the files themselves (sizes equal to the model's: nothing resized)
    same_size = tmp_path / "same"
    write_pairs(same_size, [image[:16, :16] for image in images], [label[:16, :16] for label in labels])
    for n, (image, mask) in enumerate(load_resized(source_for(same_size), p, 16, 16)
                                      for p in source_for(same_size).pairs("train")):
        np.testing.assert_array_equal(image, images[n][:16, :16])
        np.testing.assert_array_equal(mask, labels[n][:16, :16])


def test_uint8_masks_round_trip_to_the_same_one_hot(tmp_path: Path) -> None:
    images, labels = random_pairs(4, 16, 16, seed=1)
    write_pairs(tmp_path / "index", images, labels, index_masks=True)
    ignore = [np.zeros((16, 16), bool) for _ in labels]
    ignore[0][:4, :] = True
    ignore[3][:, -3:] = True
    write_pairs(tmp_path / "rgb", images, labels, ignore=ignore)
    reference = np.stack([np.eye(3, dtype=np.int8)[label] for label in labels])  # the reference's int8 one-hot

    for folder, table, with_weights in (("index", TABLE, False),
                                        ("rgb", dataclasses.replace(TABLE, ignore_color=WHITE), True)):
        source = source_for(tmp_path / folder, table)
        got = batches(make_dataset(source, source.pairs("train"), settings(batch_size=4, with_weights=with_weights)))
        assert len(got) == 1
        y = got[0][1]
        if not with_weights:
            np.testing.assert_array_equal(y, reference.astype(np.float32))
            np.testing.assert_array_equal(y.argmax(axis=-1), np.stack(labels))
            continue
        weights = got[0][2]
        ignored = np.stack(ignore)
        np.testing.assert_array_equal(weights, (~ignored).astype(np.int32))
        np.testing.assert_array_equal(y[ignored], 0.0)  # IGNORE_INDEX has no class: an all-zero row
        np.testing.assert_array_equal(y[~ignored], reference[~ignored].astype(np.float32))


def test_an_epoch_is_the_same_whether_started_at_zero_or_resumed(tmp_path: Path) -> None:
    images, labels = random_pairs(7, 16, 16, seed=2)
    write_pairs(tmp_path, images, labels)
    source = source_for(tmp_path)
    how = settings(augment=dataclasses.replace(NO_AUGMENT, flips=True, rotate90=True, stain_jitter=0.1))
    whole = epochs_of(source, how, 0, 3)
    resumed = epochs_of(source, how, 2, 3)
    assert_same(whole[2], resumed[0])
    assert_same(epochs_of(source, how, 1, 2)[0], whole[1])
    # the epochs really differ (order and augmentation), so the equality above means something
    assert not np.array_equal(whole[1][0][0], whole[2][0][0])


def test_memory_and_disk_cache_give_the_same_data_as_no_cache(tmp_path: Path) -> None:
    images, labels = random_pairs(5, 20, 20, seed=3)
    write_pairs(tmp_path / "data", images, labels)
    source = source_for(tmp_path / "data")
    how = settings(augment=dataclasses.replace(NO_AUGMENT, flips=True, rotate90=True, stain_jitter=0.05))
    plain = epochs_of(source, how, 0, 2)
    for cache in ("memory", "disk"):
        cached = epochs_of(source, dataclasses.replace(how, cache=cache, cache_dir=tmp_path / "cache"), 0, 2)
        for epoch in range(2):
            assert_same(plain[epoch], cached[epoch])
    pairs = source.pairs("train")
    assert_same(batches(make_dataset(source, pairs, settings())),
                batches(make_dataset(source, pairs, settings(cache="memory"))))


def test_disk_cache_is_reused_and_follows_an_edited_mask(tmp_path: Path) -> None:
    images, labels = random_pairs(3, 16, 16, seed=7)
    write_pairs(tmp_path / "data", images, labels)
    source = source_for(tmp_path / "data")
    pairs = source.pairs("train")
    how = settings(cache="disk", cache_dir=tmp_path / "cache")
    first = batches(make_dataset(source, pairs, how, name="valid"))
    stored = sorted((tmp_path / "cache").rglob("*.npz"))
    assert len(stored) == 3 and all(p.parent.name == "valid-16x16-resized" for p in stored)
    with np.load(stored[0]) as one:
        assert one["image"].dtype == np.uint8 and one["mask"].shape == (16, 16)
    assert_same(batches(make_dataset(source, pairs, how, name="valid")), first)  # read back, same data
    edited = (labels[1] + 1) % 3
    write_pairs(tmp_path / "data", images, [labels[0], edited, labels[2]])
    after = batches(make_dataset(source, pairs, how, name="valid"))
    np.testing.assert_array_equal(after[0][1][1].argmax(-1), edited)  # not the stale cached mask
    np.testing.assert_array_equal(after[0][1][0], first[0][1][0])


DIHEDRAL = [lambda a, k=k, f=f: np.rot90(a[:, ::-1] if f else a, k) for k in range(4) for f in (False, True)]


def test_augmentation_moves_image_and_mask_together(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    labels = []
    for _ in range(6):
        label = np.zeros((16, 16), np.uint8)
        label[2:7, 1:12] = 1  # an asymmetric layout: every flip or turn shows
        label[9:15, 10:14] = 2
        label[int(rng.integers(0, 16)), int(rng.integers(0, 16))] = 2
        labels.append(label)
    images = []
    for label in labels:
        image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        image[:, :, 0] = label * 50  # channel 0 encodes the mask
        images.append(image)
    write_pairs(tmp_path, images, labels)
    source = source_for(tmp_path)
    how = settings(augment=dataclasses.replace(NO_AUGMENT, flips=True, rotate90=True))
    transforms_seen = set()
    for epoch in epochs_of(source, how, 0, 4):
        for x, y in epoch:
            classes = y.argmax(axis=-1)
            np.testing.assert_array_equal(y.sum(axis=-1), 1.0)
            np.testing.assert_array_equal(np.rint(x[..., 0] * 255).astype(int), classes * 50)
            for mask in classes:
                found = [t for t, turn in enumerate(DIHEDRAL) for label in labels
                         if np.array_equal(turn(label), mask)]
                assert found, "an augmented mask is no flip/turn of any source mask"
                transforms_seen.update(found)
    assert len(transforms_seen) > 2  # flips and turns happened, not only the identity


def test_crop_mode_takes_model_size_windows_and_pads_small_images(tmp_path: Path) -> None:
    rows, cols = np.mgrid[0:40, 0:32]
    big = np.stack([rows * 6, cols * 7, np.full_like(rows, 9)], axis=2).astype(np.uint8)
    big_label = ((rows + cols) % 3).astype(np.uint8)
    small = np.full((10, 12, 3), 200, np.uint8)
    small_label = np.ones((10, 12), np.uint8)
    write_pairs(tmp_path, [big, small], [big_label, small_label])
    source = source_for(tmp_path)
    how = settings(batch_size=1, crop=True, with_weights=True,
                   augment=NO_AUGMENT)
    windows = 0
    for epoch in epochs_of(source, how, 0, 3):
        for x, y, w in epoch:
            assert x.shape == (1, 16, 16, 3) and y.shape == (1, 16, 16, 3)
            image = np.rint(x[0] * 255).astype(int)
            if image[0, 0, 2] == 9:  # a window of the big image: find where it was taken
                top, left = image[0, 0, 0] // 6, image[0, 0, 1] // 7
                assert 0 <= top <= 24 and 0 <= left <= 16
                np.testing.assert_array_equal(image, big[top : top + 16, left : left + 16])
                np.testing.assert_array_equal(y[0].argmax(-1), big_label[top : top + 16, left : left + 16])
                np.testing.assert_array_equal(w[0], 1)
                windows += 1
            else:  # the small image, padded (never stretched): padding is black and ignored
                np.testing.assert_array_equal(image[:10, :12], 200)
                np.testing.assert_array_equal(image[10:], 0)
                np.testing.assert_array_equal(image[:, 12:], 0)
                np.testing.assert_array_equal(y[0][:10, :12].argmax(-1), 1)
                np.testing.assert_array_equal(y[0][10:], 0)
                np.testing.assert_array_equal(y[0][:, 12:], 0)
                expected = np.zeros((16, 16), np.int32)
                expected[:10, :12] = 1
                np.testing.assert_array_equal(w[0], expected)
    assert windows == 3
    # without [augment] (valid/test) crop mode covers each image with a grid of model-size tiles
    tiles = batches(make_dataset(source, source.pairs("train"), settings(batch_size=16, crop=True)))
    x, y = tiles[0]
    tops, lefts = (0, 16, 24), (0, 16)
    assert len(x) == len(tops) * len(lefts) + 1
    for i, (top, left) in enumerate((t, s) for t in tops for s in lefts):
        np.testing.assert_array_equal(np.rint(x[i] * 255).astype(int), big[top : top + 16, left : left + 16])
        np.testing.assert_array_equal(y[i].argmax(-1), big_label[top : top + 16, left : left + 16])
    np.testing.assert_array_equal(y[-1][10:], 0)
    assert IGNORE_INDEX == 255


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_a_tiny_model_without_nans(tmp_path: Path, policy: str) -> None:
    import keras
    from segkit_flexunet.flexunet import build_flexunet

    from segkit.engine.runtime import configure_precision

    images, labels = random_pairs(4, 16, 16, seed=6)
    for image, label in zip(images, labels):
        image[label == 1] //= 3  # something learnable
    write_pairs(tmp_path, images, labels)
    source = source_for(tmp_path)
    data, steps = make_training_dataset(source, source.pairs("train"), settings(batch_size=2), 0, 3)
    keras.utils.set_random_seed(1)
    configure_precision(policy)
    try:
        model = build_flexunet(image_height=16, image_width=16, image_channels=3, num_classes=3, base_filters=4,
                               base_kernels=3, num_layers=2, dropout_rate=0.0)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.CategoricalCrossentropy())
        assert model.get_layer("enc0_conv1").compute_dtype == policy.split("_")[1]
        history = model.fit(data, epochs=3, steps_per_epoch=steps, shuffle=False, verbose=0).history
        probabilities = np.asarray(model.predict_on_batch(np.stack(images).astype(np.float32) / 255))
    finally:
        configure_precision("float32")
    losses = np.asarray(history["loss"])
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    assert probabilities.dtype == np.float32  # the softmax stays float32
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-3)
    assert all(np.isfinite(np.asarray(w, dtype=np.float32)).all() for w in model.weights)


def test_turned_and_zoomed_windows_resample_image_and_mask_with_one_map(tmp_path: Path) -> None:
    rows, cols = np.mgrid[0:48, 0:48]
    image = np.stack([rows * 5, cols * 5, np.full_like(rows, 9)], axis=2).astype(np.uint8)  # position, readable
    label = ((rows // 4 + cols // 4) % 3).astype(np.uint8)
    ignored = (rows // 4) % 4 == 3  # every fourth band of blocks ignored
    write_pairs(tmp_path, [image], [label], ignore=[ignored])
    source = source_for(tmp_path, dataclasses.replace(TABLE, ignore_color=WHITE))
    reference = np.where(ignored, IGNORE_INDEX, label)
    zoom = 0.2
    how = settings(batch_size=1, crop=True, crops_per_image=12, with_weights=True,
                   augment=dataclasses.replace(NO_AUGMENT, rotate=True, zoom=zoom))
    out_rows, out_cols = np.mgrid[0:16, 0:16]
    design = np.stack([out_cols.ravel(), out_rows.ravel(), np.ones(256)], axis=1)
    angles, checked = [], 0
    for epoch in epochs_of(source, how, 0, 2):
        for x, y, w in epoch:
            # the input position each output pixel was read from: the image encodes it (bilinear is exact
            # on a linear ramp), and one affine map must explain every pixel
            read = np.rint(x[0] * 255)[..., :2] / 5
            fit = np.linalg.lstsq(design, read.reshape(-1, 2), rcond=None)[0]
            assert np.abs(design @ fit - read.reshape(-1, 2)).max() < 0.2  # rounding only: one map, no mirroring
            (a, b), (c, d) = fit[0], fit[1]  # d(row)/dx, d(col)/dx; d(row)/dy, d(col)/dy
            scale = np.hypot(a, b)
            assert 1 - zoom - 0.01 < scale < 1 + zoom + 0.01
            assert abs(np.hypot(c, d) - scale) < 0.01 and abs(a * c + b * d) < 0.01  # a turn and a scale
            angles.append(np.arctan2(a, b))
            assert (read >= -0.1).all() and (read <= 47.1).all()  # the window stays inside the image
            # the mask went through the same map with nearest sampling: ignored pixels stay ignored
            exact = (design @ fit).reshape(16, 16, 2)
            clear = (np.abs(exact - np.floor(exact) - 0.5) > 0.1).all(axis=-1)  # not on a rounding tie
            expected = reference[np.rint(exact[..., 0]).astype(int), np.rint(exact[..., 1]).astype(int)]
            classes = np.where(w[0] == 0, IGNORE_INDEX, y[0].argmax(-1))
            np.testing.assert_array_equal(classes[clear], expected[clear])
            checked += int(clear.sum())
    assert checked > 24 * 256 * 0.5
    assert np.ptp(np.unwrap(np.sort(angles))) > np.pi  # turned by many angles, not only the identity


def test_turns_and_zoom_reach_the_pipeline_and_keep_resized_labels_whole(tmp_path: Path) -> None:
    """Resize mode (no crop): the whole model-size image turns about its centre; the corners are
    mirrored, not filled, so a project without an ignore colour gets no unlabelled pixels."""
    from segkit.engine.pipeline_settings import pipeline_settings
    from segkit.project import load_project

    project = load_project(write_tiny_project(tmp_path), ["augment.enabled=true", "augment.rotate=true",
                                                          "augment.zoom=0.25"])
    augment = pipeline_settings(project, training=True).augment
    assert augment is not None and (augment.rotate, augment.zoom) == (True, 0.25)
    assert pipeline_settings(project, training=False).augment is None  # never valid or test
    rows, cols = np.mgrid[0:16, 0:16]
    image = np.stack([rows * 15, cols * 15, np.full_like(rows, 9)], axis=2).astype(np.uint8)
    label = (rows >= 8).astype(np.uint8) + (cols >= 8)
    write_pairs(tmp_path / "data", [image], [label])
    how = settings(batch_size=1, crops_per_image=1, augment=dataclasses.replace(augment, flips=False, rotate90=False))
    changed = 0
    for epoch in epochs_of(source_for(tmp_path / "data"), how, 0, 6):
        x, y = epoch[0]
        np.testing.assert_array_equal(y.sum(axis=-1), 1.0)
        assert set(np.unique(y.argmax(-1))) <= {0, 1, 2}
        changed += not np.array_equal(np.rint(x[0] * 255), image)
    assert changed == 6


def test_a_global_seed_of_zero_is_refused_in_one_line_and_segkit_never_sets_it(tmp_path: Path) -> None:
    import tensorflow as tf

    from segkit.engine.runtime import seed_everything

    images, labels = random_pairs(2, 16, 16)
    write_pairs(tmp_path, images, labels)
    source = source_for(tmp_path)
    try:
        tf.random.set_seed(0)
        with pytest.raises(ValueError, match=r"global seed is 0 .* set another global seed first"):
            make_training_dataset(source, source.pairs("train"), settings(), 0, 1)
        for seed in (0, 2**31 - 2, 2**32 - 3):  # seed + 1 would be 0 modulo 2**31 - 1 for the last two
            seed_everything(seed)
            assert len(epochs_of(source, settings(batch_size=1), 0, 1)[0]) == 2
    finally:
        tf.random.set_seed(1)
