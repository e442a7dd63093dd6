"""A cohort run: one Dask task per slide not done yet, its rows gathered into ``cohort.csv``.

Each task is :func:`segkit.cohort.worker.segment_cohort_slide`, tried again by Dask (on another
worker) when it raises or its worker dies, :data:`~segkit.cohort.cluster.RETRIES` times; after that
the slide's row says failed and why, and the other slides go on. The table (CSV, and Parquet with
pyarrow) has a row per slide of the cohort, in the cohort's order: ``done`` (segmented now),
``skipped`` (complete from an earlier run of the same model; its row from its record), ``failed``
(with the reason) or ``pending`` (not finished when the run stopped). It is written as slides
finish (at most every :data:`TABLE_EVERY` seconds) and at the end, also when interrupted. Dask does
not stop a task that is already running when its client goes: a pending slide may still be finished
by its worker (its outputs whole, record last), and the next run then counts it as skipped.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segkit.cohort.cluster import RETRIES
from segkit.cohort.plan import CohortPlan, CohortSlide, start_writing
from segkit.cohort.worker import ModelPlugin, failed_row, segment_cohort_slide
from segkit.project import Project
from segkit.slides.outputs import read_slide_record, slide_complete
from segkit.slides.summary import write_summary
from segkit.stop_signals import StopRequest

#: seconds between two writes of the table while slides finish
TABLE_EVERY = 5.0
#: seconds between two looks for finished slides and a stop signal
POLL_EVERY = 0.1
#: the statuses a row can have, in the order a summary counts them
STATUSES = ("done", "skipped", "failed", "pending")

#: called with each finished slide's row
RowDone = Callable[[Mapping[str, object]], None]


@dataclass(frozen=True)
class CohortResult:
    """The table's rows (cohort order) and the files it was written to."""

    rows: list[dict[str, object]]
    tables: list[Path]

    def count(self, status: str) -> int:
        return sum(1 for row in self.rows if row["status"] == status)

    @property
    def failed(self) -> list[dict[str, object]]:
        return [row for row in self.rows if row["status"] == "failed"]


def run_cohort(project: Project, plan: CohortPlan, client: Any, on_row: RowDone | None = None,
               threads: int | None = None, stop: StopRequest | None = None) -> CohortResult:
    """Segment ``plan``'s slides not done yet on ``client``'s workers; the table of every slide. A stop
    noted in ``stop`` ends the run within :data:`POLL_EVERY` seconds, the slides not finished pending."""
    rows = {slide.path: _first_row(slide) for slide in plan.slides}
    start_writing(plan)
    table = _Table(plan, rows)
    todo = plan.todo
    if not todo or (stop is not None and stop.requested):
        return CohortResult(table.write(), table.files)
    client.register_plugin(ModelPlugin(project, plan.options.folds, plan.digest, threads))
    run = uuid.uuid4().hex[:8]
    futures = {client.submit(segment_cohort_slide, slide.path, slide.outputs, plan.options, retries=RETRIES,
                             pure=False, key=f"segkit-slide-{run}-{number}"): slide
               for number, slide in enumerate(todo)}
    started = {future.key: time.monotonic() for future in futures}
    try:
        for future in _completed(futures, stop or StopRequest()):
            slide = futures[future]
            rows[slide.path] = _finished_row(future, slide, time.monotonic() - started[future.key])
            if on_row is not None:
                on_row(rows[slide.path])
            table.write_soon()
    finally:
        client.cancel(list(futures))  # an interrupted run leaves no task behind on a shared scheduler
        _finished_unheard(plan, rows)
        table.write()
    return CohortResult([rows[slide.path] for slide in plan.slides], table.files)


def _completed(futures: Mapping[Any, CohortSlide], stop: StopRequest) -> Iterator[Any]:
    """``futures`` as they finish, until all have or a stop is noted."""
    from distributed import as_completed

    finished = as_completed(futures)
    while not finished.is_empty() and not stop.requested:
        batch = finished.next_batch(block=False)
        if not batch:
            stop.wait(POLL_EVERY)
        yield from batch


def _finished_unheard(plan: CohortPlan, rows: dict[Path, dict[str, object]]) -> None:
    """A slide still pending whose worker finished it before the run stopped (its result never came
    back) is done: its row from its record, so the table says what is on disk."""
    for slide in plan.todo:
        if rows[slide.path]["status"] == "pending" and slide_complete(slide.outputs, plan.digest):
            summary = (read_slide_record(slide.outputs) or {}).get("summary")
            rows[slide.path] = {"slide": str(slide.path), "status": "done", "reason": "",
                                **(summary if isinstance(summary, dict) else {}), "record": str(slide.outputs.record)}
            rows[slide.path]["slide"] = str(slide.path)


def _first_row(slide: CohortSlide) -> dict[str, object]:
    if slide.done_row is not None:
        return {"slide": str(slide.path), "status": "skipped", "reason": "",
                **{key: value for key, value in slide.done_row.items() if key != "slide"},
                "record": str(slide.outputs.record)}
    return {"slide": str(slide.path), "status": "pending", "reason": ""}


def _finished_row(future: Any, slide: CohortSlide, seconds: float) -> dict[str, object]:
    """The task's row; a task that failed (after its retries) or whose workers died is a failed row."""
    from distributed import KilledWorker

    try:
        row: dict[str, object] = future.result()
    except KilledWorker:
        return failed_row(slide.path, f"the worker segmenting it died {RETRIES + 1} time(s) (killed, or out of "
                          "memory: give the workers more memory or segment it alone)", seconds)
    except Exception as exc:  # noqa: BLE001 - the slide's failure is its row's, the cohort goes on
        return failed_row(slide.path, f"{exc.__class__.__name__}: {exc}", seconds)
    return {**row, "record": str(slide.outputs.record)} if row["status"] == "done" else row


class _Table:
    """The cohort's table, written atomically now (:meth:`write`) or when :data:`TABLE_EVERY` has passed."""

    def __init__(self, plan: CohortPlan, rows: dict[Path, dict[str, object]]) -> None:
        self.path, self.order, self.rows = plan.table, [slide.path for slide in plan.slides], rows
        self.files: list[Path] = []
        self.last = 0.0

    def write(self) -> list[dict[str, object]]:
        ordered = [self.rows[path] for path in self.order]
        self.files = write_summary(self.path, ordered)
        self.last = time.monotonic()
        return ordered

    def write_soon(self) -> None:
        if time.monotonic() - self.last >= TABLE_EVERY:
            self.write()


def local_threads(workers: int) -> int:
    """The model threads of each of ``workers`` local worker processes: the machine's cores shared out."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))
