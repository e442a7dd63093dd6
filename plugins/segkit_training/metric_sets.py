"""Builders of the metric groups the training plugin registers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from segkit.plugin import MetricRequest

if TYPE_CHECKING:
    import keras


def safe_name(name: str) -> str:
    """A class name as it may appear in a metric name and a CSV column."""
    return "".join(ch if ch.isalnum() else "_" for ch in name.strip().lower()) or "class"


def safe_names(names: Sequence[str]) -> list[str]:
    """:func:`safe_name` of each class, made distinct: "tumour a" and "tumour-a" are both
    ``tumour_a``, and two metrics of one name would share a column. A repeat gets its class index."""
    result: list[str] = []
    for index, name in enumerate(names):
        safe = safe_name(name)
        while safe in result:
            safe = f"{safe}_{index}"
        result.append(safe)
    return result


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
