"""The training progress shows the time left, measured from the run's own epochs and steps."""

from __future__ import annotations

import io
from collections.abc import Iterator

from rich.console import Console

from segkit.report.keras_callbacks import RichProgress, _eta


def _clock(ticks: list[float]) -> Iterator[float]:
    yield from ticks


def _progress_after_one_epoch(epochs: int, initial_epoch: int, ticks: list[float]) -> list[str]:
    """The lines a non-terminal console (a Slurm log) gets from one 3-step epoch, then the end."""
    out = io.StringIO()
    clock = _clock(ticks)
    progress = RichProgress(Console(file=out, width=200, force_terminal=False), epochs, initial_epoch,
                            clock=lambda: next(clock))
    progress.set_params({"steps": 3})
    progress.on_train_begin()
    progress.on_epoch_begin(initial_epoch)
    for step in range(3):
        progress.on_train_batch_end(step, {"loss": 0.5})
    progress.on_epoch_end(initial_epoch, {"val_loss": 0.4})
    progress.on_train_end()
    return out.getvalue().splitlines()


def test_after_the_first_epoch_the_epoch_bar_shows_the_time_left() -> None:
    # train begins at 0, the epoch at 1; steps end at 3, 5, 7; the epoch (validation included) at 12
    epochs_line, steps_line = _progress_after_one_epoch(5, 0, [0.0, 1.0, 3.0, 5.0, 7.0, 12.0])
    assert epochs_line.startswith("epochs") and "1/5" in epochs_line
    assert "eta 0:00:48" in epochs_line  # 12 s an epoch, 4 to go
    assert "eta 0:00:00" in steps_line  # the last step done


def test_a_resumed_run_times_only_its_own_epochs() -> None:
    epochs_line, _ = _progress_after_one_epoch(100, 40, [0.0, 0.0, 1.0, 2.0, 3.0, 75.0])
    assert "41/100" in epochs_line and "eta 1:13:45" in epochs_line  # 75 s an epoch, 59 to go


def test_the_step_bar_counts_down_at_the_pace_of_the_epoch_so_far() -> None:
    assert _eta(4.0, 2, 6) == "eta 0:00:08"
    assert _eta(4.0, 0, 6) == "" and _eta(4.0, 2, None) == ""  # nothing to go by yet; unknown length
