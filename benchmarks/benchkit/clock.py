"""Timing and memory inside a worker process."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class StepClock:
    """A Keras callback noting when each train batch finishes: wall (``perf_counter``) and this
    process's CPU time (``process_time``, all threads), so a busy machine can be told apart.
    Past ``deadline`` (a ``perf_counter`` value) it stops training, having seen 3 steps at least."""

    def __new__(cls, deadline: float | None = None) -> Any:
        import keras

        class _Clock(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.ends: list[float] = []
                self.cpu: list[float] = []
                self.stopped = False

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                self.ends.append(time.perf_counter())
                self.cpu.append(time.process_time())
                if deadline is not None and self.ends[-1] > deadline and len(self.ends) >= 3:
                    self.stopped = True  # a configuration too slow for the time budget
                    self.model.stop_training = True

        return _Clock()


def steady_rate(ends: Sequence[float], warmup: int, batch_size: int) -> float:
    """Images/s over the steps after ``warmup`` finished steps."""
    if len(ends) <= warmup + 1:
        return float("nan")
    return (len(ends) - 1 - warmup) * batch_size / (ends[-1] - ends[warmup])


def cpu_rate(ends: Sequence[float], cpu: Sequence[float], warmup: int, batch_size: int) -> float:
    """Images per CPU-second (all threads of this process) over the steps after ``warmup``; with
    other processes on the machine this moves less than the wall-clock rate."""
    if len(ends) <= warmup + 1:
        return float("nan")
    return (len(ends) - 1 - warmup) * batch_size / (cpu[-1] - cpu[warmup])


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def peak_rss_mb() -> float:
    """This process's peak resident set size (``VmHWM``) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's resident set size now (``VmRSS``) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
