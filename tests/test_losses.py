"""The dice_crossentropy loss: its value by hand, ignored pixels, saving, and the project key."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from segkit.specs import LossRequest
from segkit_training.dice_crossentropy_loss import DiceCrossentropy
from segkit_training.loss_builders import dice_crossentropy


def one_hot(labels: np.ndarray, classes: int = 3) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[labels]


def softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)


def by_hand(truth: np.ndarray, probs: np.ndarray, dice_weight: float) -> float:
    """Mean cross-entropy over labelled pixels + mean over present foreground classes of 1 - Dice."""
    labelled = truth.sum(-1) > 0
    crossentropy = -(truth * np.log(np.clip(probs, 1e-7, 1.0))).sum(-1)[labelled].mean()
    losses = []
    for c in range(1, truth.shape[-1]):
        t, p = truth[..., c][labelled], probs[..., c][labelled]
        if t.sum() > 0:
            losses.append(1 - 2 * (t * p).sum() / (t.sum() + p.sum()))
    return float(crossentropy + dice_weight * np.mean(losses))


def test_value_by_hand_with_an_absent_class() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (2, 5, 4))  # class 2 never occurs: no Dice term of its own
    probs = softmax(rng.normal(size=(2, 5, 4, 3))).astype(np.float32)
    for weight in (1.0, 0.5):
        loss = dice_crossentropy(LossRequest(3, {"dice_weight": weight}))
        assert float(loss(one_hot(labels), probs)) == pytest.approx(by_hand(one_hot(labels), probs, weight), rel=1e-5)


def test_a_perfect_prediction_costs_nothing() -> None:
    truth = one_hot(np.array([[[0, 1], [2, 1]]]))
    assert float(DiceCrossentropy()(truth, truth)) == pytest.approx(0.0, abs=1e-5)


def test_ignored_pixels_change_nothing() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, (2, 4, 6))
    probs = softmax(rng.normal(size=(2, 4, 6, 3))).astype(np.float32)
    truth = one_hot(labels)
    truth[:, :, 4:] = 0
    weights = np.ones((2, 4, 6), np.float32)
    weights[:, :, 4:] = 0
    loss = DiceCrossentropy()
    cropped = float(loss(one_hot(labels[:, :, :4]), probs[:, :, :4]))
    assert float(loss(truth, probs, sample_weight=weights)) == pytest.approx(cropped, rel=1e-6)
    assert cropped == pytest.approx(by_hand(truth, probs, 1.0), rel=1e-5)


def test_round_trip_through_keras_serialization() -> None:
    loss = DiceCrossentropy(dice_weight=0.25)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(clone) is DiceCrossentropy and clone.get_config() == loss.get_config()
    truth = one_hot(np.array([[[0, 1], [2, 1]]]))
    probs = softmax(np.random.default_rng(1).normal(size=(1, 2, 2, 3))).astype(np.float32)
    assert float(clone(truth, probs)) == pytest.approx(float(loss(truth, probs)))


def test_project_selects_it_and_checks_its_option(tiny_project: Path) -> None:
    from segkit.engine import components
    from segkit.errors import ProjectError
    from segkit.plugins import get_registry
    from segkit.project import load_project

    project = load_project(tiny_project, ["loss.name=dice_crossentropy", "loss.dice_weight=0.5"])
    loss = components.build_loss(project, get_registry())
    assert isinstance(loss, DiceCrossentropy) and loss.dice_weight == 0.5
    with pytest.raises(ProjectError, match="dice_weight"):
        load_project(tiny_project, ["loss.name=dice_crossentropy", "loss.dice_weight=-1"])
