"""Keras callbacks of the core: rich progress bars and the per-epoch CSV histories and plots."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from segkit.report.charts import metric_panels, plot_history
from segkit.report.history import read_csv, split_columns, write_csv
from segkit.run_folder import TRAIN_LOSSES, TRAIN_METRICS

SHOWN_METRICS = ("loss", "dice_coef_multiclass", "mean_foreground_dice")


def _brief(logs: dict[str, Any] | None, prefix: str = "") -> str:
    logs = logs or {}
    return "  ".join(f"{prefix}{k} {float(logs[prefix + k]):.4f}" for k in SHOWN_METRICS if prefix + k in logs)


def _eta(elapsed: float, done: int, total: int | None) -> str:
    """Time left at the mean pace so far; blank before the first unit is done or when the total is unknown."""
    if not done or total is None:
        return ""
    seconds = round(elapsed / done * max(total - done, 0))
    return f"eta {seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class RichProgress(keras.callbacks.Callback):
    """An epoch bar and a step bar with the time left and the live loss and headline metrics.

    The time left is measured from this run's own epochs and steps (rich's estimate looks at a
    30-second window and needs two updates, so an epoch bar would show none for most runs).
    """

    def __init__(
        self, console: Console, epochs: int, initial_epoch: int = 0, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}"), TextColumn("{task.fields[figures]}", markup=False), console=console, transient=False,
        )
        self.epochs = epochs
        self.initial_epoch = initial_epoch
        self.clock = clock
        self._started = self._epoch_started = 0.0
        self._epoch_task: Any = None
        self._step_task: Any = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.progress.start()
        self._started = self.clock()
        self._epoch_task = self.progress.add_task(
            "epochs", total=self.epochs, completed=self.initial_epoch, eta="", figures="")
        self._step_task = self.progress.add_task("steps ", total=self.params.get("steps"), eta="", figures="")

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_started = self.clock()
        self.progress.reset(self._step_task, total=self.params.get("steps"), eta="", figures="")

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        eta = _eta(self.clock() - self._epoch_started, batch + 1, self.params.get("steps"))
        self.progress.update(self._step_task, completed=batch + 1, eta=eta, figures=_brief(logs))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # a resumed run counts only the epochs it ran itself
        eta = _eta(self.clock() - self._started, epoch + 1 - self.initial_epoch, self.epochs - self.initial_epoch)
        self.progress.update(self._epoch_task, completed=epoch + 1, eta=eta, figures=_brief(logs, "val_"))

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
        for name in (f"{TRAIN_LOSSES}.csv", f"{TRAIN_METRICS}.csv"):
            path = eval_dir / name
            for row in read_csv(path) if path.exists() else []:
                merged.setdefault(int(row["epoch"]), {}).update(row)
        return [merged[e] for e in sorted(merged)]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        row = {k: float(v) for k, v in (logs or {}).items()}
        row["epoch"] = float(epoch + 1)
        self.rows = [r for r in self.rows if int(r["epoch"]) <= epoch] + [row]
        losses, metrics = split_columns(row)
        write_csv(self.eval_dir / f"{TRAIN_LOSSES}.csv", losses, self.rows)
        write_csv(self.eval_dir / f"{TRAIN_METRICS}.csv", metrics, self.rows)
        loss_panel = ("loss", [c for c in losses if c != "learning_rate"])
        plot_history(self.eval_dir / f"{TRAIN_LOSSES}.png", self.rows, [loss_panel])
        plot_history(self.eval_dir / f"{TRAIN_METRICS}.png", self.rows, metric_panels(metrics))
