"""The slides of a ``segkit infer`` call: each through the slide engine, then the call's ``slides.csv``.

A slide's outputs are whole or absent: when its segmentation fails or is interrupted, every output
of that slide this call had written or replaced is removed,
and so is its record when anything it vouched for was replaced, so a rerun redoes the slide rather
than taking a mixture for done. SIGTERM is made to behave like Ctrl-C (:func:`interrupts_raised`):
the exception unwinds every context manager, so the mask's scratch file and any temporary file are
gone and no output is left half-written under its final name.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segkit.engine.infer_plan import InferPlan
from segkit.engine.slide_plan import SlideOptions
from segkit.plugins import get_registry
from segkit.project import Project
from segkit.slides.outputs import SlideOutputs
from segkit.slides.summary import write_summary
from segkit.stop_signals import stop_signals_handled

#: a slide's progress as infer reports it: (slide, tiles done, tiles in all)
SlideProgress = Callable[[Path, int, int], None]


class InferInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM during ``segkit infer``; ``slide`` is the slide it stopped, if any."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.slide: Path | None = None
        self.slides_done = 0


@dataclass(frozen=True)
class SlidesDone:
    """What the slides of a call gave: their rows of ``slides.csv``, how many were segmented now and
    how many skipped as already done, and the nuclei of all of them (a skipped slide's from its row)."""

    rows: list[dict[str, object]]
    segmented: int
    skipped: int
    nuclei: int


class _Interrupts:
    """Raises :class:`InferInterrupted` for a stop signal, except while a cleanup is :meth:`held_back`:
    a second Ctrl-C there would stop the removal of a failed slide's outputs half-way."""

    def __init__(self) -> None:
        self.holding = False
        self.held = ""

    def handle(self, name: str) -> None:
        if self.holding:
            self.held = self.held or name
            return
        raise InferInterrupted(name)

    @contextmanager
    def held_back(self, raise_after: bool = True) -> Iterator[None]:
        """The block runs to its end; a signal that came meanwhile is raised after it (``raise_after``)."""
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        held, self.held = self.held, ""
        if held and raise_after:
            raise InferInterrupted(held)


_INTERRUPTS = _Interrupts()


@contextmanager
def interrupts_raised() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`InferInterrupted` in the main thread while the block runs
    (elsewhere, as in an embedding application's worker thread, the signals are left as they are)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with stop_signals_handled(_INTERRUPTS.handle):
        yield


def segment_slides(project: Project, plan: InferPlan, model: Any, progress: SlideProgress | None = None
                   ) -> SlidesDone:
    """Each slide of ``plan`` not done yet segmented into ``plan.masks``, then ``slides.csv`` written
    with a row per slide of the plan (a skipped one's from its record)."""
    digest = plan.slide_options.model_digest(project) if any(not slide.done for slide in plan.slides) else ""
    rows: list[dict[str, object]] = []
    segmented = 0
    for slide in plan.slides:
        if slide.done_row is not None:
            rows.append({**slide.done_row, "slide": str(slide.path)})  # where it is now, if it was moved
            continue
        report = None if progress is None else _reporting(progress, slide.path)
        try:
            rows.append(segment_whole(project, slide.path, slide.outputs, plan.masks, plan.slide_options, model,
                                      digest, report))
        except InferInterrupted as interrupted:
            interrupted.slide, interrupted.slides_done = slide.path, segmented
            raise
        segmented += 1
    write_summary(plan.slide_table, rows)
    nuclei = sum(int(row.get("nuclei") or 0) for row in rows)  # type: ignore[call-overload]
    return SlidesDone(rows, segmented, len(plan.slides) - segmented, nuclei)


def segment_whole(project: Project, slide: Path, outputs: SlideOutputs, masks: Path, options: SlideOptions,
                  model: Any, digest: str, progress: Callable[[int, int], None] | None = None) -> dict[str, object]:
    """One slide through the slide engine into ``masks``, whole or not at all (a failure removes what it
    wrote, :func:`whole_or_nothing`); its summary row. What ``segkit infer`` and a cohort's worker both run."""
    from segkit.engine.slide_infer import segment_slide

    with whole_or_nothing(outputs):
        # overwrite: the caller's plan refused every file of another's that --overwrite did not allow
        result = segment_slide(project, slide, masks, get_registry(), options.microns_per_pixel, overwrite=True,
                               region=options.region, model=model, model_digest=digest, progress=progress)
    return result.summary_row(slide)


def _reporting(progress: SlideProgress, slide: Path) -> Callable[[int, int], None]:
    return lambda done, total: progress(slide, done, total)


@contextmanager
def whole_or_nothing(outputs: SlideOutputs) -> Iterator[None]:
    """On any failure, remove the outputs the block wrote or replaced (and then the record too)."""
    before = {path: _identity(path) for path in outputs.every()}
    try:
        yield
    except BaseException as failure:
        # a signal during an interruption's own cleanup is the same request to stop, already on its way
        with _INTERRUPTS.held_back(raise_after=not isinstance(failure, InferInterrupted)):
            changed = [path for path in outputs.every() if _identity(path) != before[path]]
            for path in [*changed, *([outputs.record] if changed else [])]:
                path.unlink(missing_ok=True)
        raise


def _identity(path: Path) -> tuple[int, int, int] | None:
    """Which file is at ``path`` (inode, size, modification time), None when there is none."""
    try:
        status = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns
