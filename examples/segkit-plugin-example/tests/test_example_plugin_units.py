"""The plugin's own tests: hooks, the model, the loss's ignored pixels and round trips, the callback.

Run from this folder with segkit installed: ``python -m pytest``. Nothing here needs the plugin
to be pip-installed except ``test_registry_finds_the_entry_point_declaration``'s use of segkit.
"""

from __future__ import annotations

import csv
import importlib.metadata as metadata
from pathlib import Path

import keras
import numpy as np
import pytest

import segkit_example_plugin as plugin
from segkit.plugins import build_registry
from segkit_example_plugin.dice_ce import DiceCrossEntropy
from segkit_example_plugin.lr_logger import LearningRateLogger
from segkit_example_plugin.res_attention_unet import build_res_attention_unet


def one_hot_batch(seed: int, shape: tuple[int, ...] = (2, 8, 8), classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, shape)]
    logits = rng.normal(size=(*shape, classes)).astype(np.float32)
    y_pred = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return y_true, y_pred


def test_hooks_describe_one_model_loss_and_callback() -> None:
    assert [s.name for s in plugin.segkit_models()] == ["res-attention-unet"]
    assert [s.name for s in plugin.segkit_losses()] == ["dice-ce"]
    assert [s.name for s in plugin.segkit_callbacks()] == ["lr-logger"]
    assert [o.name for o in plugin.segkit_models()[0].options] == ["filters", "depth", "dropout", "attention"]


def test_registry_finds_the_entry_point_declaration() -> None:
    point = metadata.EntryPoint(name="example", value="segkit_example_plugin", group="segkit")
    registry = build_registry([point])
    assert registry.names("model") == ["res-attention-unet"]
    assert registry.get("loss", "dice-ce").spec.options[0].name == "dice_weight"


def test_model_maps_images_to_softmax_and_reloads(tmp_path: Path) -> None:
    model = build_res_attention_unet(image_height=32, image_width=32, image_channels=3, num_classes=3,
                                     filters=4, depth=3)
    images = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    before = model.predict_on_batch(images)
    assert before.shape == (2, 32, 32, 3)
    np.testing.assert_allclose(before.sum(-1), 1.0, atol=1e-5)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")  # standard layers only: no custom_objects
    np.testing.assert_allclose(reloaded.predict_on_batch(images), before, atol=1e-6)
    assert [layer.name for layer in reloaded.layers if layer.name.endswith("_attention_apply")] == \
        ["dec1_attention_apply", "dec0_attention_apply"]


def test_attention_can_be_switched_off() -> None:
    model = build_res_attention_unet(image_height=16, image_width=16, image_channels=1, num_classes=2,
                                     filters=2, depth=2, attention=False)
    assert not [layer for layer in model.layers if "attention" in layer.name]


def test_model_refuses_sizes_its_depth_cannot_halve() -> None:
    with pytest.raises(ValueError, match=r"image_width=36 must divide by 2\*\*\(depth-1\) = 8"):
        build_res_attention_unet(image_height=32, image_width=36, image_channels=3, num_classes=2, depth=4)


def test_loss_ignores_pixels_of_weight_zero() -> None:
    y_true, y_pred = one_hot_batch(1)
    weights = np.ones((2, 8, 8), np.float32)
    weights[:, 5:] = 0  # rows 5..7 are "ignored"
    loss = DiceCrossEntropy()
    value = float(loss(y_true, y_pred, sample_weight=weights))
    scrambled = y_pred.copy()
    scrambled[:, 5:] = scrambled[:, 5:, :, ::-1]
    assert float(loss(y_true, scrambled, sample_weight=weights)) == pytest.approx(value, abs=1e-6)
    # identical to the loss of the kept pixels alone: the mean is over the weight, not the pixel count
    assert float(loss(y_true[:, :5], y_pred[:, :5])) == pytest.approx(value, abs=1e-6)
    assert float(loss(y_true, y_pred, sample_weight=np.zeros_like(weights))) == 0.0


def test_cross_entropy_part_is_keras_mean_with_sample_weight() -> None:
    y_true, y_pred = one_hot_batch(2)
    weights = (np.random.default_rng(3).random((2, 8, 8)) > 0.3).astype(np.float32)
    reference = keras.losses.CategoricalCrossentropy(reduction="mean_with_sample_weight")
    ours = DiceCrossEntropy(dice_weight=0.0)
    assert float(ours(y_true, y_pred, sample_weight=weights)) == pytest.approx(
        float(reference(y_true, y_pred, sample_weight=weights)), rel=1e-5)


def test_perfect_prediction_has_no_dice_loss() -> None:
    y_true, _ = one_hot_batch(4)
    assert float(DiceCrossEntropy(ce_weight=0.0)(y_true, y_true)) == pytest.approx(0.0, abs=1e-6)


def test_loss_config_round_trip() -> None:
    loss = DiceCrossEntropy(dice_weight=0.5, smooth=2.0, include_background=True)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, DiceCrossEntropy)
    assert restored.get_config() == loss.get_config()
    y_true, y_pred = one_hot_batch(5)
    assert float(restored(y_true, y_pred)) == pytest.approx(float(loss(y_true, y_pred)))
    with pytest.raises(ValueError, match="supports reduction 'mean_with_sample_weight' only"):
        DiceCrossEntropy(reduction="sum")


def test_loss_survives_a_saved_and_reloaded_compiled_model(tmp_path: Path) -> None:
    model = build_res_attention_unet(image_height=16, image_width=16, image_channels=3, num_classes=3,
                                     filters=2, depth=2)
    model.compile(optimizer="adam", loss=DiceCrossEntropy(dice_weight=0.25, smooth=0.5))
    model.optimizer.build(model.trainable_variables)  # so its (empty) state saves and reloads as is
    model.save(tmp_path / "compiled.keras")
    reloaded = keras.saving.load_model(tmp_path / "compiled.keras")  # finds the loss by its registered name
    assert isinstance(reloaded.loss, DiceCrossEntropy)
    assert (reloaded.loss.dice_weight, reloaded.loss.smooth) == (0.25, 0.5)


def test_lr_logger_writes_each_epoch_and_restarts_with_a_new_run(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="categorical_crossentropy")
    x, y = np.ones((8, 4), np.float32), np.eye(2, dtype=np.float32)[np.arange(8) % 2]
    path = tmp_path / "lr_log.csv"
    model.fit(x, y, epochs=2, verbose=0, callbacks=[LearningRateLogger(path)])
    rows = list(csv.DictReader(path.open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([0.05, 0.05])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[LearningRateLogger(path)])
    assert [r["epoch"] for r in csv.DictReader(path.open())] == ["1"]
