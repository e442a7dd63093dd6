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


def test_per_class_figures_share_one_confusion_matrix() -> None:
    """Only the first figure counts; the others read its matrix and agree with metrics that count alone."""
    from segkit_training.dice_metrics import ConfusionIoU

    metrics = per_class_scores(MetricRequest(TABLE))
    counter, readers = metrics[0], metrics[1:]
    for metric in metrics:
        metric.update_state(one_hot(TRUTH), one_hot(PRED))
    np.testing.assert_array_equal(np.asarray(counter.total_cm), [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    for reader in readers:
        assert not np.asarray(reader._own_cm).any(), reader.name  # never counted by itself
        alone_type = ConfusionIoU if reader.name.startswith("iou_") else ConfusionDice
        alone = alone_type(3, reader.target_class_ids)
        alone.update_state(one_hot(TRUTH), one_hot(PRED))
        assert float(reader.result()) == pytest.approx(float(alone.result()), abs=1e-6), reader.name
    ids = [id(v) for m in metrics for v in m.variables]
    assert len(ids) == len(set(ids))  # Keras does not track the shared matrix twice
    for metric in metrics:
        metric.reset_state()
    assert float(metrics[1].result()) == 0.0


def test_a_reloaded_reader_counts_for_itself() -> None:
    metrics = per_class_scores(MetricRequest(TABLE))
    for metric in metrics:
        metric.update_state(one_hot(TRUTH), one_hot(PRED))
    iou_benign = next(m for m in metrics if m.name == "iou_benign")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(iou_benign))
    assert "counted_by" not in clone.get_config() and clone.get_config() == iou_benign.get_config()
    clone.update_state(one_hot(TRUTH), one_hot(PRED))
    assert float(clone.result()) == pytest.approx(float(iou_benign.result())) == pytest.approx(2 / 3, abs=1e-6)


def test_compiled_model_reports_shared_figures_like_keras_iou() -> None:
    inputs = keras.Input((2, 3, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1, activation="softmax")(inputs))
    model.compile("adam", "categorical_crossentropy", metrics=per_class_scores(MetricRequest(TABLE)))
    x = np.random.default_rng(1).random((4, 2, 3, 3)).astype(np.float32)
    y = one_hot(np.random.default_rng(2).integers(0, 3, (4, 2, 3)))
    logs = model.evaluate(x, y, batch_size=2, verbose=0, return_dict=True)
    predicted = model.predict(x, verbose=0)
    for index, name in enumerate(TABLE.names):
        iou = keras.metrics.IoU(3, [index], sparse_y_true=False, sparse_y_pred=False)
        iou.update_state(y, predicted)
        assert logs[f"iou_{name}"] == pytest.approx(float(iou.result()), abs=1e-6)


def test_compiled_metrics_skip_ignored_pixels_in_fit_and_evaluate(tiny_project) -> None:  # type: ignore[no-untyped-def]
    """The model as segkit train compiles it: every figure Keras logs (train_metrics.csv, val_*)
    gets the ignore weights, not only the loss."""
    from segkit.engine import components
    from segkit.plugins import get_registry
    from segkit.project import load_project

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1, activation="softmax")(inputs))
    components.compile_model(model, load_project(tiny_project), get_registry())
    rng = np.random.default_rng(5)
    x = rng.random((2, 4, 6, 3)).astype(np.float32)
    labels = rng.integers(0, 3, (2, 4, 6))
    truth = one_hot(labels)
    truth[:, :, 4:] = 0  # the two right columns are ignored: all-zero rows, weight 0
    weights = np.ones((2, 4, 6), np.int32)
    weights[:, :, 4:] = 0
    full = model.evaluate(x, truth, sample_weight=weights, verbose=0, return_dict=True)
    cropped = model.evaluate(x[:, :, :4], one_hot(labels[:, :, :4]), verbose=0, return_dict=True)
    assert {"dice_benign", "iou_malignant", "mean_foreground_dice"} <= set(full)
    for name, value in cropped.items():
        assert full[name] == pytest.approx(value, abs=1e-5), name
