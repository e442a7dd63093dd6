"""The plugin's own tests: hooks, the model, the loss's formula, ignored pixels and round trips, the callback.

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
import tensorflow as tf

import segkit_example_plugin as plugin
from segkit.plugins import build_registry
from segkit.plugin import LossRequest
from segkit_example_plugin.declarations import build_focal_tversky
from segkit_example_plugin.focal_tversky import FocalTverskyCrossEntropy
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
    assert [s.name for s in plugin.segkit_losses()] == ["focal-tversky"]
    assert [s.name for s in plugin.segkit_callbacks()] == ["lr-logger"]
    assert [o.name for o in plugin.segkit_models()[0].options] == ["filters", "depth", "dropout", "attention"]


def test_registry_finds_the_entry_point_declaration() -> None:
    point = metadata.EntryPoint(name="example", value="segkit_example_plugin", group="segkit")
    registry = build_registry([point])
    assert registry.names("model") == ["res-attention-unet"]
    assert [o.name for o in registry.get("loss", "focal-tversky").spec.options] == \
        ["alpha", "beta", "gamma", "ce_weight", "smooth"]


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
    loss = FocalTverskyCrossEntropy()
    value = float(loss(y_true, y_pred, sample_weight=weights))
    scrambled = y_pred.copy()
    scrambled[:, 5:] = scrambled[:, 5:, :, ::-1]
    assert float(loss(y_true, scrambled, sample_weight=weights)) == pytest.approx(value, abs=1e-6)
    # identical to the loss of the kept pixels alone: the mean is over the weight, not the pixel count
    assert float(loss(y_true[:, :5], y_pred[:, :5])) == pytest.approx(value, abs=1e-6)
    # every pixel ignored: no cross-entropy, and each index is smooth / smooth = 1
    assert float(loss(y_true, y_pred, sample_weight=np.zeros_like(weights))) == 0.0


def test_cross_entropy_part_is_keras_mean_with_sample_weight() -> None:
    y_true, y_pred = one_hot_batch(2)
    weights = (np.random.default_rng(3).random((2, 8, 8)) > 0.3).astype(np.float32)
    reference = keras.losses.CategoricalCrossentropy(reduction="mean_with_sample_weight")
    with_ce = float(FocalTverskyCrossEntropy(ce_weight=1.0)(y_true, y_pred, sample_weight=weights))
    without = float(FocalTverskyCrossEntropy(ce_weight=0.0)(y_true, y_pred, sample_weight=weights))
    assert with_ce - without == pytest.approx(float(reference(y_true, y_pred, sample_weight=weights)), rel=1e-5)


def test_tversky_term_matches_its_formula_in_numpy() -> None:
    y_true, y_pred = one_hot_batch(6, classes=4)
    weights = (np.random.default_rng(7).random((2, 8, 8)) > 0.4).astype(np.float32)[..., None]
    alpha, beta, gamma, smooth = 0.2, 0.8, 0.5, 0.5
    tp = (weights * y_true * y_pred).sum((0, 1, 2))
    fp = (weights * (1 - y_true) * y_pred).sum((0, 1, 2))
    fn = (weights * y_true * (1 - y_pred)).sum((0, 1, 2))
    index = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    expected = np.mean((1 - index[1:]) ** gamma)
    loss = FocalTverskyCrossEntropy(alpha=alpha, beta=beta, gamma=gamma, ce_weight=0.0, smooth=smooth)
    assert float(loss(y_true, y_pred, sample_weight=weights[..., 0])) == pytest.approx(expected, rel=1e-5)


def test_equal_weights_and_gamma_one_give_keras_soft_dice() -> None:
    y_true, y_pred = one_hot_batch(8)
    per_class = keras.losses.dice(y_true[..., 1:], y_pred[..., 1:], axis=(0, 1, 2))
    loss = FocalTverskyCrossEntropy(alpha=0.5, beta=0.5, gamma=1.0, ce_weight=0.0, smooth=0.0)
    assert float(loss(y_true, y_pred)) == pytest.approx(float(np.mean(per_class)), rel=1e-5)


def test_beta_above_alpha_makes_a_miss_cost_more_than_a_false_alarm() -> None:
    y_true = np.zeros((1, 8, 8, 2), np.float32)
    y_true[..., 0] = 1
    y_true[0, 2:6, 2:6] = [0, 1]  # a 16-pixel nucleus
    missed, spurious = y_true.copy(), y_true.copy()
    missed[0, 2:4, 2:6] = [1, 0]  # 8 of its pixels left out
    spurious[0, 6:8, 2:6] = [0, 1]  # 8 background pixels called nucleus
    for alpha, beta in ((0.3, 0.7), (0.7, 0.3)):
        loss = FocalTverskyCrossEntropy(alpha=alpha, beta=beta, gamma=1.0, ce_weight=0.0, smooth=0.0)
        miss, alarm = float(loss(y_true, missed)), float(loss(y_true, spurious))
        assert miss == pytest.approx(1 - 8 / (8 + beta * 8)) and alarm == pytest.approx(1 - 16 / (16 + alpha * 8))
        assert (miss > alarm) == (beta > alpha)


def test_a_batch_of_ignored_pixels_gives_zero_gradients_not_nan() -> None:
    y_true, y_pred = one_hot_batch(9)
    logits = tf.Variable(np.log(y_pred))
    for weights, nonzero in ((np.zeros((2, 8, 8), np.float32), False), (np.ones((2, 8, 8), np.float32), True)):
        with tf.GradientTape() as tape:
            loss = FocalTverskyCrossEntropy(gamma=0.75)(y_true, tf.nn.softmax(logits), sample_weight=weights)
        gradient = tape.gradient(loss, logits).numpy()
        assert np.isfinite(gradient).all() and bool(np.abs(gradient).max() > 0) == nonzero


def test_perfect_prediction_has_no_tversky_loss() -> None:
    y_true, _ = one_hot_batch(4)
    assert float(FocalTverskyCrossEntropy(ce_weight=0.0)(y_true, y_true)) == pytest.approx(0.0, abs=1e-6)


def test_builder_refuses_an_index_blind_to_errors() -> None:
    options = {"alpha": 0.0, "beta": 0.0, "gamma": 1.0, "ce_weight": 1.0, "smooth": 1.0}
    with pytest.raises(ValueError, match="alpha and beta are both 0"):
        build_focal_tversky(LossRequest(num_classes=3, options=options))
    loss = build_focal_tversky(LossRequest(num_classes=3, options=options | {"beta": 0.9}))
    assert (loss.alpha, loss.beta, loss.gamma) == (0.0, 0.9, 1.0)


def test_loss_config_round_trip() -> None:
    loss = FocalTverskyCrossEntropy(alpha=0.4, beta=0.6, gamma=1.5, ce_weight=0.5, smooth=2.0)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, FocalTverskyCrossEntropy)
    assert restored.get_config() == loss.get_config()
    y_true, y_pred = one_hot_batch(5)
    assert float(restored(y_true, y_pred)) == pytest.approx(float(loss(y_true, y_pred)))
    with pytest.raises(ValueError, match="supports reduction 'mean_with_sample_weight' only"):
        FocalTverskyCrossEntropy(reduction="sum")


def test_loss_survives_a_saved_and_reloaded_compiled_model(tmp_path: Path) -> None:
    model = build_res_attention_unet(image_height=16, image_width=16, image_channels=3, num_classes=3,
                                     filters=2, depth=2)
    model.compile(optimizer="adam", loss=FocalTverskyCrossEntropy(beta=0.8, gamma=1.25))
    model.optimizer.build(model.trainable_variables)  # so its (empty) state saves and reloads as is
    model.save(tmp_path / "compiled.keras")
    reloaded = keras.saving.load_model(tmp_path / "compiled.keras")  # finds the loss by its registered name
    assert isinstance(reloaded.loss, FocalTverskyCrossEntropy)
    assert (reloaded.loss.beta, reloaded.loss.gamma) == (0.8, 1.25)


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
