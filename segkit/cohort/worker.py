"""A cohort's worker side: the model loaded once per worker process, and the task of one slide.

:class:`ModelPlugin` is a Dask ``WorkerPlugin``: registered once by the client, its ``setup`` runs
on every worker (and on workers that join later), loads the run's model (or the fold ensemble) and
keeps it, so the model loads once per worker, never once per slide. :func:`segment_cohort_slide` is
the task: the single-machine slide path, whole or nothing, then a row for the cohort's table. A
slide's own problem (a :class:`~segkit.errors.SegkitError`: not a slide, damaged, no tissue) is
its row's reason at once, as a retry would meet it again; anything else is raised for Dask to
retry on another worker.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from pathlib import Path
from typing import Any, cast

from distributed import WorkerPlugin, get_worker

from segkit.engine.slide_plan import SlideOptions
from segkit.errors import SegkitError
from segkit.project import Project
from segkit.slides.outputs import SlideOutputs

PLUGIN_NAME = "segkit-model"


class ModelPlugin(WorkerPlugin):
    """Loads ``project``'s model (``folds``: their ensemble) once on each worker; ``threads`` caps the
    model's threads when several workers share one machine's cores."""

    name = PLUGIN_NAME

    def __init__(self, project: Project, folds: tuple[int, ...] | None, digest: str, threads: int | None) -> None:
        self.project = project
        self.folds = folds
        self.digest = digest
        self.threads = threads
        self.model: Any = None
        self.failure = ""
        self.loads = 0

    def setup(self, worker: Any) -> None:
        restore_malloc_thresholds()
        try:
            self.model = self._load()
            self.loads += 1
        except Exception as exc:  # noqa: BLE001 - every slide of this worker reports it as its reason
            self.failure = f"the model did not load on worker {worker.address}: {exc.__class__.__name__}: {exc}"

    def _load(self) -> Any:
        from segkit.cv.ensemble import load_run_model
        from segkit.engine.runtime import limit_model_threads
        from segkit.engine.slide_plan import SlideOptions

        if self.threads:
            limit_model_threads(self.threads)
        seen = SlideOptions(folds=self.folds).model_digest(self.project)
        if seen != self.digest:  # the worker sees another file than the client (another disk, or retrained)
            raise SegkitError(f"its model file has sha256 {seen[:12]}…, the cohort's {self.digest[:12]}… "
                              "(give every worker the same run folder, and do not retrain during a cohort)")
        return load_run_model(self.project, self.folds)


#: glibc's mallopt parameters, and the thresholds put back (its own dynamic maximum for the mmap
#: threshold on 64-bit, and twice that for trimming, as glibc pairs them)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD, _TRIM_THRESHOLD = 32 * 2**20, 64 * 2**20


def restore_malloc_thresholds() -> bool:
    """Undo ``MALLOC_TRIM_THRESHOLD_=65536``, which Dask's nanny gives every worker it starts: setting it
    also pins glibc's mmap threshold at 128 KiB, so every tile- and band-sized array is a fresh mmap whose
    pages fault in again: a slide's time on a worker was 1.11x on one machine here and its CPU time
    ~1.5x on another (docs/cohorts-benchmarks.md). Only where that variable is set and glibc's ``mallopt`` exists; whether
    it was undone."""
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): nothing to undo the same way
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def segment_cohort_slide(slide: Path, outputs: SlideOutputs, options: SlideOptions) -> dict[str, object]:
    """The task of one slide: its outputs into ``outputs``' folder and its row (status done or failed)."""
    from segkit.engine.infer_slides import segment_whole

    worker = get_worker()
    plugin = cast(ModelPlugin, worker.plugins[PLUGIN_NAME])
    started = time.monotonic()
    where = {"worker": worker.address, "pid": os.getpid(), "model_loads": plugin.loads}
    if plugin.failure:
        return failed_row(slide, plugin.failure, time.monotonic() - started, where)
    try:
        row = segment_whole(plugin.project, slide, outputs, outputs.record.parent, options, plugin.model,
                            plugin.digest)
    except SegkitError as exc:
        return failed_row(slide, str(exc), time.monotonic() - started, where)
    return {"slide": str(slide), "status": "done", "reason": "", **row, **where}


def failed_row(slide: Path, reason: str, seconds: float, where: dict[str, object] | None = None) -> dict[str, object]:
    """The row of a slide that failed: why, and after how long."""
    return {"slide": str(slide), "status": "failed", "reason": " ".join(reason.split()),
            "seconds": round(seconds, 3), **(where or {})}
