"""A rich progress bar per slide, in tissue tiles, with the time elapsed and left (``segkit infer``)."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class SlideBars:
    """Bars shown while the block runs; :meth:`update` is the slide engine's progress callback with
    the slide added (a slide's bar appears with its first batch, when its tile count is known)."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TextColumn("tiles"),
            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=console, transient=False)
        self.tasks: dict[Path, Any] = {}

    def update(self, slide: Path, done: int, total: int) -> None:
        task = self.tasks.get(slide)
        if task is None:
            task = self.tasks[slide] = self.progress.add_task(slide.name, total=total)
        self.progress.update(task, completed=done, total=total)

    def __enter__(self) -> SlideBars:
        self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.progress.stop()
