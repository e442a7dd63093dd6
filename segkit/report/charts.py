"""Plots of the per-epoch histories: ``eval/train_losses.png`` and ``eval/train_metrics.png``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from segkit.report.history import HEADLINE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: one titled axes of a history plot and the CSV columns drawn on it
Panel = tuple[str, Sequence[str]]


def metric_panels(metrics: Sequence[str]) -> list[Panel]:
    """The panels of ``train_metrics.png``: every Dice, then any other (plugin) metric.

    Per-class IoU is left out (it stays in the CSV): it moves with the Dice of its class. A
    column is per-class when the always-on per-class scores wrote both ``dice_<c>`` and
    ``iou_<c>``, so no class table is needed and a plugin's ``iou_score`` is still drawn.
    """
    bases = [m for m in metrics if not m.startswith("val_")]
    dice_of = {m.removeprefix("dice_") for m in bases if m.startswith("dice_")}
    classes = {c for c in dice_of if f"iou_{c}" in bases}
    per_class_iou = {f"iou_{c}" for c in classes}
    dice = [m for m in bases if m in HEADLINE or m.removeprefix("dice_") in classes]
    others = [m for m in bases if m not in dice and m not in per_class_iou]
    panels = [("Dice", dice), ("other metrics", others)]
    return [(title, _with_validation(columns, metrics)) for title, columns in panels if columns]


def _with_validation(columns: Sequence[str], available: Sequence[str]) -> list[str]:
    return [*columns, *(f"val_{c}" for c in columns if f"val_{c}" in available)]


def history_figure(rows: Sequence[Mapping[str, float]], panels: Sequence[Panel]) -> Figure:
    """One axes per panel, one line per column against the whole epochs (1, 2, ...).

    A metric and its ``val_`` twin share a colour; validation is dashed.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(7 * len(panels), 4.2), dpi=100)
    epochs = [int(row["epoch"]) for row in rows]
    for axes, (title, columns) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        colours: dict[str, str] = {}
        for column in columns:
            base = column.removeprefix("val_")
            colours.setdefault(base, f"C{len(colours) % 10}")
            style = "--" if column.startswith("val_") else "-"
            values = [row.get(column, float("nan")) for row in rows]
            axes.plot(epochs, values, style, color=colours[base], marker="o", ms=3, label=column)
        # epochs are whole numbers: never a tick at 1.5, and one epoch still gets its "1"
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axes.set_xlim(min(epochs, default=1) - 0.5, max(epochs, default=1) + 0.5)
        axes.set_xlabel("epoch")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc="best", ncol=2, handlelength=3.5)
    figure.tight_layout()
    return figure


def plot_history(path: Path, rows: Sequence[Mapping[str, float]], panels: Sequence[Panel]) -> None:
    """Write :func:`history_figure` as PNG (the Agg canvas: no display needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    history_figure(rows, panels).savefig(path)
