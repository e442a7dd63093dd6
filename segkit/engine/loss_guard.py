"""Stopping a run whose loss is no longer a number, before its checkpoint saves the damage."""

from __future__ import annotations

import math
from typing import Any

import keras

from segkit.errors import TrainingDiverged

WHAT_TO_TRY = ("lower optimizer.learning_rate, set optimizer.clipvalue, or check that the masks hold the "
               "class colours")


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises :class:`TrainingDiverged` at the first batch (or epoch end) whose loss is NaN or infinite.

    Keras's ``TerminateOnNaN`` only sets ``stop_training``, after which the epoch still ends and
    the epoch checkpoint would save the broken weights; raising abandons the epoch instead, so
    the run folder keeps the last good checkpoint. Must come before the checkpointing callbacks.
    """

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._check(logs, ("loss",), f", batch {batch + 1}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._check(logs, ("loss", "val_loss"), "")

    def _check(self, logs: dict[str, Any] | None, names: tuple[str, ...], where: str) -> None:
        for name in names:
            value = (logs or {}).get(name)
            if value is not None and not math.isfinite(float(value)):
                kept = (f"the checkpoint of epoch {self.epoch} is kept" if self.epoch
                        else "no epoch had finished, so no checkpoint of this run is kept")
                raise TrainingDiverged(f"{self.source}: {name} became {float(value)} at epoch {self.epoch + 1}{where}; "
                                       f"training stopped and {kept} ({WHAT_TO_TRY})")
