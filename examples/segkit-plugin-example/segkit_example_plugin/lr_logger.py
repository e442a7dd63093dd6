"""A callback that writes the learning rate of every epoch to a CSV file in the run folder."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import keras


class LearningRateLogger(keras.callbacks.Callback):
    """``epoch,learning_rate`` per epoch (1-based), the rate the epoch trained with.

    Rows of later epochs than the current one are dropped, so a rerun with ``--overwrite``
    starts the file afresh and ``--resume`` continues it.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._rate = float("nan")

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # read before the epoch: ReduceLROnPlateau changes the rate in on_epoch_end; float32 holds 7 digits
        self._rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        rows = [row for row in self._read() if int(row[0]) <= epoch] + [[str(epoch + 1), f"{self._rate:.7g}"]]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["epoch", "learning_rate"])
        writer.writerows(rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
        tmp.replace(self.path)  # a kill mid-write leaves the previous complete file

    def _read(self) -> list[list[str]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="", encoding="utf-8") as handle:
            return list(csv.reader(handle))[1:]
