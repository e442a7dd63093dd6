"""Metrics against hand-computed values, ignore weights, and save/reload round trips."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from segkit.classes import ClassInfo, ClassTable
from segkit.specs import MetricRequest
from segkit_training.dice_metrics import ConfusionDice, DiceCoefMulticlass, dice_coef_multiclass
from segkit_training.metric_sets import per_class_scores

TABLE = ClassTable((ClassInfo("background", (0, 0, 0)), ClassInfo("benign", (0, 255, 0)),
                    ClassInfo("malignant", (255, 0, 0))))


def one_hot(labels: np.ndarray, classes: int = 3) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[labels]


# 2x3 truth and prediction, one image: by hand, TP/FP/FN per class
TRUTH = np.array([[[0, 0, 1], [1, 2, 2]]])
PRED = np.array([[[0, 1, 1], [1, 2, 0]]])
# class 0: TP 1 (0,0), FP 1 (1,2), FN 1 (0,1) -> Dice 2/4 = 0.5, IoU 1/3
# class 1: TP 2, FP 1 (0,1), FN 0          -> Dice 4/5 = 0.8, IoU 2/3
# class 2: TP 1, FP 0, FN 1 (1,2)          -> Dice 2/3,       IoU 1/2


def test_dice_coef_multiclass_counts_background_and_averages_images() -> None:
    y_true = one_hot(np.concatenate([TRUTH, TRUTH]))
    y_pred = one_hot(np.concatenate([PRED, TRUTH]))
    per_image = np.asarray(dice_coef_multiclass(y_true, y_pred))
    # image 1: intersection 4 of 6 pixels -> 2*4/(6+6); image 2: perfect
    np.testing.assert_allclose(per_image, [8 / 12, 1.0], atol=1e-6)
    metric = DiceCoefMulticlass()
    metric.update_state(y_true, y_pred)
    assert float(metric.result()) == pytest.approx((8 / 12 + 1.0) / 2, abs=1e-6)


def _scores(y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
    results = {}
    for metric in per_class_scores(MetricRequest(TABLE)):
        metric.update_state(y_true, y_pred, sample_weight=weights)
        results[metric.name] = float(metric.result())
    return results


def test_per_class_dice_and_iou_by_hand() -> None:
    scores = _scores(one_hot(TRUTH), one_hot(PRED))
    assert scores["dice_background"] == pytest.approx(0.5, abs=1e-6)
    assert scores["dice_benign"] == pytest.approx(0.8, abs=1e-6)
    assert scores["dice_malignant"] == pytest.approx(2 / 3, abs=1e-6)
    assert scores["iou_background"] == pytest.approx(1 / 3, abs=1e-6)
    assert scores["iou_benign"] == pytest.approx(2 / 3, abs=1e-6)
    assert scores["iou_malignant"] == pytest.approx(0.5, abs=1e-6)
    assert scores["mean_foreground_dice"] == pytest.approx((0.8 + 2 / 3) / 2, abs=1e-6)


def test_dice_accumulates_over_batches_not_per_batch() -> None:
    metric = ConfusionDice(3, [1], name="dice_benign")
    metric.update_state(one_hot(TRUTH), one_hot(PRED))  # TP 2 FP 1 FN 0
    metric.update_state(one_hot(np.array([[[1, 1, 0]]])), one_hot(np.array([[[0, 0, 0]]])))  # FN 2
    assert float(metric.result()) == pytest.approx(4 / (4 + 1 + 2), abs=1e-6)


def test_zero_weight_pixels_count_nowhere() -> None:
    weights = np.array([[[1, 1, 1], [1, 1, 0]]], np.int32)  # drop pixel (1,2): truth 2, pred 0
    weighted = _scores(one_hot(TRUTH), one_hot(PRED), weights)
    cropped = _scores(one_hot(TRUTH[:, :, :2]), one_hot(PRED[:, :, :2]))
    kept_row = _scores(one_hot(np.array([[[1]]])), one_hot(np.array([[[1]]])))
    assert weighted["dice_malignant"] == pytest.approx(1.0)
    assert weighted["dice_background"] == pytest.approx(2 / 3, abs=1e-6)  # TP1 FP0 FN1
    assert cropped["dice_benign"] == pytest.approx(2 / 3, abs=1e-6) and kept_row["dice_benign"] == 1.0


def test_metrics_round_trip_through_keras_serialization() -> None:
    for metric in [DiceCoefMulticlass(), ConfusionDice(3, [1, 2], name="mean_foreground_dice")]:
        config = keras.saving.serialize_keras_object(metric)
        clone = keras.saving.deserialize_keras_object(config)
        assert type(clone) is type(metric) and clone.get_config() == metric.get_config()
        metric.update_state(one_hot(TRUTH), one_hot(PRED))
        clone.update_state(one_hot(TRUTH), one_hot(PRED))
        assert float(clone.result()) == pytest.approx(float(metric.result()))


def test_model_compiled_with_segkit_metrics_saves_and_reloads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    inputs = keras.Input((2, 3, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1, activation="softmax")(inputs))
    model.compile("adam", "categorical_crossentropy", metrics=[DiceCoefMulticlass(), ConfusionDice(3, [1, 2])])
    x = np.random.default_rng(0).random((1, 2, 3, 3)).astype(np.float32)
    model.evaluate(x, one_hot(TRUTH), verbose=0)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_ignored_pixels_change_neither_loss_nor_metrics() -> None:
    """A batch with ignored pixels scores exactly like the same batch with those pixels cropped away."""
    from segkit.specs import LossRequest
    from segkit_training.loss_builders import categorical_crossentropy

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, (2, 4, 6))
    logits = rng.normal(size=(2, 4, 6, 3)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    ignored = labels.copy()
    ignored[:, :, 4:] = 255  # the two right columns are outside the annotated region
    truth = np.eye(4, 3, dtype=np.float32)[np.where(ignored == 255, 3, ignored)]
    weights = (ignored != 255).astype(np.int32)
    loss = categorical_crossentropy(LossRequest(3, {}))
    full = float(loss(truth, probs, sample_weight=weights))
    cropped = float(loss(one_hot(labels[:, :, :4]), probs[:, :, :4]))
    assert full == pytest.approx(cropped, rel=1e-6)
    with_ignore = _scores(truth, probs, weights)
    without = _scores(one_hot(labels[:, :, :4]), probs[:, :, :4])
    for name, value in without.items():
        assert with_ignore[name] == pytest.approx(value, abs=1e-6), name
    reference = DiceCoefMulticlass()
    reference.update_state(truth, probs, sample_weight=weights)
    cropped_reference = DiceCoefMulticlass()
    cropped_reference.update_state(one_hot(labels[:, :, :4]), probs[:, :, :4])
    assert float(reference.result()) == pytest.approx(float(cropped_reference.result()), abs=1e-6)
