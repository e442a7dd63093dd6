"""``segkit infer PROJECT --slides FOLDER_OR_LIST [--scheduler ...] [--workers N]``: a cohort on Dask."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from segkit.data.names import quoted
from segkit.engine.slide_plan import SlideOptions
from segkit.errors import DataError, ExitCode
from segkit.plugins import get_registry
from segkit.project import Project
from segkit.report.console import console

if TYPE_CHECKING:
    from segkit.cohort.run import CohortResult

#: how many failed slides the closing lines name one by one
SHOWN_FAILURES = 10


def check_cohort_options(slides: Path | None, images: list[Path] | None, scheduler: str | None,
                         workers: int | None) -> None:
    """``--slides`` replaces the positional inputs; ``--scheduler``/``--workers`` only mean something with it."""
    if slides is None:
        given = "--scheduler" if scheduler is not None else "--workers" if workers is not None else None
        if given:
            raise DataError(f"{given}: runs a cohort of slides on a Dask cluster; add --slides FOLDER_OR_LIST")
        return
    if images:
        raise DataError("--slides: gives the cohort's slides; leave out the files and folders after the project "
                        "(or run them without --slides)")
    if workers is not None and workers < 1:
        raise DataError(f"--workers: {workers} is not a number of workers (give 1 or more)")


def infer_cohort(loaded: Project, slides: Path, out: Path | None, overwrite: bool, options: SlideOptions,
                 scheduler: str | None, workers: int | None, quiet: bool) -> None:
    """Plan the cohort (every check before a cluster starts), run it, print its outcome; exit 3 if a slide failed."""
    from segkit.cohort.cluster import cohort_client, parse_scheduler, require_distributed
    from segkit.cohort.plan import plan_cohort
    from segkit.cohort.run import local_threads, run_cohort
    from segkit.engine.infer_slides import InferInterrupted
    from segkit.stop_signals import stop_signals_noted

    where = parse_scheduler(scheduler or "local")
    require_distributed(where.kind)
    count = workers or 1
    plan = plan_cohort(loaded, slides, out if out is not None else loaded.infer.output, get_registry(), options,
                       overwrite)
    done = len(plan.slides) - len(plan.todo)
    already = f" ({done} already done, skipped)" if done else ""
    console.print(f"cohort: {len(plan.slides)} slide(s){already} → {plan.out}", markup=False, soft_wrap=True)
    threads = local_threads(count) if where.kind == "local" else None
    with _stopped_cleanly(), stop_signals_noted() as stop:
        with cohort_client(where, count) as client:
            _say_where(client, where.describe(count), bool(plan.todo))
            with _slide_bar(len(plan.todo), quiet) as on_row:
                result = run_cohort(loaded, plan, client, on_row, threads, stop)
        if stop.requested:  # noted, not raised (see StopRequest): the table is written, the cluster closed
            raise InferInterrupted(stop.name)
    _print_outcome(result)


@contextmanager
def _stopped_cleanly() -> Iterator[None]:
    """Ctrl-C or SIGTERM: one line, exit 130/143; the slides finished are kept and a rerun does the rest."""
    from segkit.engine.infer_slides import InferInterrupted

    try:
        yield
    except InferInterrupted as interrupted:
        console.print(f"interrupted by {interrupted.signal_name}; the slides finished are kept, the table says "
                      "which: run the same command again to segment the rest", markup=False, soft_wrap=True)
        code = ExitCode.INTERRUPTED if interrupted.signal_name == "SIGINT" else ExitCode.TERMINATED
        raise typer.Exit(code) from None


def _say_where(client: Any, described: str, working: bool) -> None:
    if not working:
        return
    serving = "dashboard" in client.scheduler_info().get("services", {})  # bokeh installed where it runs
    dashboard = f"; Dask dashboard: {client.dashboard_link}" if serving else ""
    console.print(f"running on {described}{dashboard}", markup=False, soft_wrap=True)


@contextmanager
def _slide_bar(total: int, quiet: bool) -> Iterator[Any]:
    """A bar over the cohort's slides (done and failed counted apart); the callback for each finished row."""
    if quiet or not total:
        yield None
        return
    counts = {"done": 0, "failed": 0}
    progress = Progress(TextColumn("slides"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}",
                        markup=False), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                        console=console)
    task = progress.add_task("", total=total)

    def on_row(row: Mapping[str, object]) -> None:
        counts["failed" if row["status"] == "failed" else "done"] += 1
        progress.update(task, advance=1, description=f"{counts['failed']} failed" if counts["failed"] else "")

    with progress:
        yield on_row


def _print_outcome(result: CohortResult) -> None:
    files = " and ".join(str(path) for path in result.tables)
    console.print(f"{result.count('done')} segmented, {result.count('skipped')} skipped (already done), "
                  f"{result.count('failed')} failed → {files}", markup=False, soft_wrap=True)
    failed = result.failed
    for row in failed[:SHOWN_FAILURES]:
        console.print(f"failed: {quoted(Path(str(row['slide'])).name)}: {row['reason']}", markup=False, soft_wrap=True)
    if len(failed) > SHOWN_FAILURES:
        console.print(f"... and {len(failed) - SHOWN_FAILURES} more failed slide(s): see the table", markup=False)
    if failed:
        raise typer.Exit(ExitCode.SOME_FAILED)
