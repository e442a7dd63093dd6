"""Builders of the metric groups the training plugin registers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from segkit.specs import MetricRequest

if TYPE_CHECKING:
    import keras


def safe_name(name: str) -> str:
    """A class name as it may appear in a metric name and a CSV column."""
    return "".join(ch if ch.isalnum() else "_" for ch in name.strip().lower()) or "class"


def reference_dice(request: MetricRequest) -> list[keras.metrics.Metric]:
    from segkit_training.dice_metrics import DiceCoefMulticlass

    return [DiceCoefMulticlass()]


def per_class_scores(request: MetricRequest) -> list[keras.metrics.Metric]:
    """Dice and IoU of every class, then the mean Dice over the foreground classes (index >= 1)."""
    import keras

    from segkit_training.dice_metrics import ConfusionDice

    table = request.classes
    metrics: list[keras.metrics.Metric] = []
    for index, name in enumerate(table.names):
        metrics.append(ConfusionDice(table.num_classes, [index], name=f"dice_{safe_name(name)}"))
    for index, name in enumerate(table.names):
        metrics.append(
            keras.metrics.IoU(table.num_classes, [index], name=f"iou_{safe_name(name)}",
                              sparse_y_true=False, sparse_y_pred=False)
        )
    foreground = list(range(1, table.num_classes))
    metrics.append(ConfusionDice(table.num_classes, foreground, name="mean_foreground_dice"))
    return metrics
