"""Per-epoch CSV histories (``eval/train_losses.csv``, ``eval/train_metrics.csv``); ``charts`` plots them."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from segkit.toml_io import write_atomic

LOSS_COLUMNS = ("loss", "val_loss", "learning_rate")
HEADLINE = ("dice_coef_multiclass", "mean_foreground_dice")


def split_columns(logs: Mapping[str, float]) -> tuple[list[str], list[str]]:
    """Keras log keys -> (loss columns, metric columns), each in a stable order."""
    losses = [k for k in LOSS_COLUMNS if k in logs]
    metrics = sorted((k for k in logs if k not in (*LOSS_COLUMNS, "epoch") and not k.startswith("val_")), key=metric_order)
    metrics += [f"val_{k}" for k in metrics if f"val_{k}" in logs]
    return losses, metrics


def metric_order(name: str) -> tuple[int, str]:
    """Headline figures first, then the rest (per-class Dice before IoU) by name."""
    base = name.removeprefix("val_")
    return (HEADLINE.index(base), name) if base in HEADLINE else (len(HEADLINE), name)


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, float]]) -> None:
    """Rewrite the whole CSV atomically: a kill mid-write leaves the previous complete file."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["epoch", *columns])
    for row in rows:
        writer.writerow([int(row["epoch"]), *(_cell(row.get(c)) for c in columns)])
    write_atomic(path, buffer.getvalue())


def _cell(value: float | None) -> str:
    return "" if value is None else f"{float(value):.6g}"


def read_csv(path: Path) -> list[dict[str, float]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
