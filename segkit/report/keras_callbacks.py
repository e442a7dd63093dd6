"""Keras callbacks of the core: rich progress bars and the per-epoch CSV histories and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from segkit.report.history import plot_history, read_csv, split_columns, write_csv

SHOWN_METRICS = ("loss", "dice_coef_multiclass", "mean_foreground_dice")


def _brief(logs: dict[str, Any] | None, prefix: str = "") -> str:
    logs = logs or {}
    return "  ".join(f"{prefix}{k} {float(logs[prefix + k]):.4f}" for k in SHOWN_METRICS if prefix + k in logs)


class RichProgress(keras.callbacks.Callback):
    """An epoch bar and a step bar with the live loss and headline metrics."""

    def __init__(self, console: Console, epochs: int, initial_epoch: int = 0) -> None:
        super().__init__()
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[figures]}", markup=False), console=console, transient=False,
        )
        self.epochs = epochs
        self.initial_epoch = initial_epoch
        self._epoch_task: Any = None
        self._step_task: Any = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.progress.start()
        self._epoch_task = self.progress.add_task(
            "epochs", total=self.epochs, completed=self.initial_epoch, figures="")
        self._step_task = self.progress.add_task("steps ", total=self.params.get("steps"), figures="")

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.progress.reset(self._step_task, total=self.params.get("steps"), figures="")

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.progress.update(self._step_task, completed=batch + 1, figures=_brief(logs))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.progress.update(self._epoch_task, completed=epoch + 1, figures=_brief(logs, "val_"))

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.progress.stop()


class HistoryWriter(keras.callbacks.Callback):
    """Rewrites ``train_losses.csv`` / ``train_metrics.csv`` and their plots after every epoch."""

    def __init__(self, eval_dir: Path, resume_rows: list[dict[str, float]] | None = None) -> None:
        super().__init__()
        self.eval_dir = eval_dir
        self.rows: list[dict[str, float]] = list(resume_rows or [])

    @staticmethod
    def existing_rows(eval_dir: Path) -> list[dict[str, float]]:
        """Rows of an earlier run, merged from both CSVs by epoch (for ``--resume``)."""
        merged: dict[int, dict[str, float]] = {}
        for name in ("train_losses.csv", "train_metrics.csv"):
            path = eval_dir / name
            for row in read_csv(path) if path.exists() else []:
                merged.setdefault(int(row["epoch"]), {}).update(row)
        return [merged[e] for e in sorted(merged)]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        row = {k: float(v) for k, v in (logs or {}).items()}
        row["epoch"] = float(epoch + 1)
        self.rows = [r for r in self.rows if int(r["epoch"]) <= epoch] + [row]
        losses, metrics = split_columns(row)
        write_csv(self.eval_dir / "train_losses.csv", losses, self.rows)
        write_csv(self.eval_dir / "train_metrics.csv", metrics, self.rows)
        plot_history(self.eval_dir / "train_losses.png", self.rows, losses, "loss")
        headline = [m for m in metrics if m.removeprefix("val_") in SHOWN_METRICS]
        plot_history(self.eval_dir / "train_metrics.png", self.rows, headline, "metrics")
