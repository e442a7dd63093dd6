"""``train_metrics.png``: every Dice and any plugin metric, against whole epochs counted from 1."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.axes import Axes

from segkit.report.charts import history_figure, metric_panels
from segkit.report.history import split_columns

CLASSES = ("background", "benign", "malignant")


def _row(epoch: int) -> dict[str, float]:
    """A history row as Keras logs it, with the per-class scores and two plugin metrics."""
    scores = {"dice_coef_multiclass": 0.9, "mean_foreground_dice": 0.5, "focal_tversky_index": 0.3, "iou_score": 0.4,
              **{f"{kind}_{name}": 0.6 for kind in ("dice", "iou") for name in CLASSES}}
    return {"epoch": float(epoch), "loss": 1.0 / epoch, "val_loss": 1.1 / epoch, "learning_rate": 0.01,
            **{f"{prefix}{k}": v for k, v in scores.items() for prefix in ("", "val_")}}


def _labels(axes: Axes) -> list[str]:
    return [str(line.get_label()) for line in axes.get_lines()]


def _visible_ticks(axes: Axes) -> list[float]:
    low, high = axes.get_xlim()
    return [float(t) for t in axes.get_xticks() if low <= t <= high]


def test_metrics_plot_draws_every_dice_and_the_plugin_metrics_not_per_class_iou() -> None:
    rows = [_row(epoch) for epoch in (1, 2, 3)]
    figure = history_figure(rows, metric_panels(split_columns(rows[-1])[1]))
    dice, others = figure.axes
    assert (dice.get_title(), others.get_title()) == ("Dice", "other metrics")
    train = ["dice_coef_multiclass", "mean_foreground_dice", *(f"dice_{name}" for name in CLASSES)]
    assert _labels(dice) == [*train, *(f"val_{m}" for m in train)]
    assert _labels(others) == ["focal_tversky_index", "iou_score", "val_focal_tversky_index", "val_iou_score"]
    assert [line.get_color() for line in dice.get_lines()[:5]] == [line.get_color() for line in dice.get_lines()[5:]]
    assert {line.get_linestyle() for line in dice.get_lines()[5:]} == {"--"}
    assert _visible_ticks(dice) == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("epochs", [1, 2, 7])
def test_epoch_ticks_are_whole_epochs_from_one(epochs: int) -> None:
    rows = [_row(epoch) for epoch in range(1, epochs + 1)]
    axes = history_figure(rows, [("loss", ["loss", "val_loss"])]).axes[0]
    ticks = _visible_ticks(axes)
    assert ticks and all(t.is_integer() and 1 <= t <= epochs for t in ticks)
    assert np.array_equal(np.asarray(axes.get_lines()[0].get_xdata()), np.arange(1, epochs + 1))
