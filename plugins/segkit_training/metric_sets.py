"""Builders of the metric groups the training plugin registers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from segkit.plugin import MetricRequest, safe_names

if TYPE_CHECKING:
    import keras


def reference_dice(request: MetricRequest) -> list[keras.metrics.Metric]:
    from segkit_training.dice_metrics import DiceCoefMulticlass

    return [DiceCoefMulticlass()]


def per_class_scores(request: MetricRequest) -> list[keras.metrics.Metric]:
    """Dice and IoU of every class, then the mean Dice over the foreground classes (index >= 1).

    The first (background Dice) accumulates the confusion matrix; the others read it.
    """
    from segkit_training.dice_metrics import ConfusionDice, ConfusionIoU

    table = request.classes
    names = safe_names(table.names)
    counter = ConfusionDice(table.num_classes, [0], name=f"dice_{names[0]}")
    metrics: list[keras.metrics.Metric] = [counter]
    metrics += [ConfusionDice(table.num_classes, [index], name=f"dice_{name}", counted_by=counter)
                for index, name in enumerate(names) if index > 0]
    metrics += [ConfusionIoU(table.num_classes, [index], name=f"iou_{name}", counted_by=counter)
                for index, name in enumerate(names)]
    foreground = list(range(1, table.num_classes))
    metrics.append(ConfusionDice(table.num_classes, foreground, name="mean_foreground_dice", counted_by=counter))
    return metrics
