"""Cohorts on Dask: slides per hour with 1 and 2 local workers, and the cost of Dask against the
single-process slide path, on the same slides in one run, A B C A B C.

    .venv/bin/python benchmarks/bench_cohort.py [--slides 8] [--slide-side 2048] [--rounds 2] [--model small]
    .venv/bin/python benchmarks/bench_cohort.py --smoke     # two tiny slides and model, seconds

``--slides`` generated slides (``benchkit.slides.write_slide``, each its own seed, ``--slide-side``
square at 0.5 µm/px, a 128-pixel glass margin) and one saved model, in one temporary folder. Each
side is a fresh process (``benchkit.workers.worker``) that segments every slide into a fresh folder
and times the whole call, TensorFlow's import and the model's load included, as a user's command:

* **single**: ``segkit infer`` of the slides' folder in this process (``infer.infer``), TensorFlow
  limited to one thread;
* **cohort1**: ``segkit infer --slides`` on a local cluster of 1 worker process of 1 thread
  (``plan_cohort`` + ``cohort_client`` + ``run_cohort``): the same work plus Dask, so its extra time
  over **single** is the cohort's overhead (goal: at most 5%);
* **cohort2**: the same with 2 worker processes of 1 thread each: 2 / 1 workers is the scaling
  (efficiency = the speed-up / 2).

Every side runs with one model thread per process so that the workers, not TensorFlow's own
threads, are what scales. ``startup`` is the time until the cluster's workers answer (no TensorFlow
yet); ``slide time`` sums the per-slide seconds of the slides' rows (``segment_slide`` on the
worker, model loaded); the rest of a wall is TensorFlow's import, the model's load and Dask.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.clock import load_average
from benchkit.slides import MODELS, SMOKE_MOSAIC, MOSAIC, ensure_model, load_slide_project, measured
from benchkit.slides import slide_parser, started, write_slide, write_slide_project
from benchkit.tables import median, table
from benchkit.workers import emit

SCRIPT = Path(__file__).resolve()
MARGIN = 128
SIDES = ("single", "cohort1", "cohort2")


def one_model_thread() -> None:
    """TensorFlow on one thread in this process (before its first op; a no-op once it has started)."""
    from segkit.engine.runtime import limit_model_threads

    try:
        limit_model_threads(1)
    except RuntimeError:
        pass  # --smoke runs every side in one process whose TensorFlow already runs


def single_side(project: Any, folder: Path, out: Path) -> dict[str, Any]:
    from segkit.engine.infer import infer
    from segkit.engine.infer_plan import plan_infer

    started = time.perf_counter()
    one_model_thread()
    done = infer(project, plan_infer(project, [folder / "slides"], out))
    assert done.slides is not None
    return {"seconds": time.perf_counter() - started, "startup_s": 0.0, "rows": done.slides.rows}


def cohort_side(project: Any, registry: Any, folder: Path, out: Path, workers: int) -> dict[str, Any]:
    from segkit.cohort.cluster import Scheduler, cohort_client
    from segkit.cohort.plan import plan_cohort
    from segkit.cohort.run import run_cohort
    from segkit.engine.slide_plan import SlideOptions

    started = time.perf_counter()
    plan = plan_cohort(project, folder / "slides", out, registry, SlideOptions())
    with cohort_client(Scheduler("local"), workers) as client:
        client.wait_for_workers(workers)
        up = time.perf_counter() - started
        result = run_cohort(project, plan, client, threads=1)
    return {"seconds": time.perf_counter() - started, "startup_s": up, "rows": result.rows}


def run_worker(args: argparse.Namespace) -> None:
    folder = Path(args.folder)
    project, registry = load_slide_project(folder / "project" / "tiny.toml")
    if args.side == "prepare":
        ensure_model(project, registry)
        emit({"prepared": True})
        return
    out = Path(tempfile.mkdtemp(prefix="cohort-", dir=folder))
    try:
        if args.side == "single":
            result = single_side(project, folder, out)
        else:
            result = cohort_side(project, registry, folder, out, int(args.side.removeprefix("cohort")))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rows = result.pop("rows")
    failed = [row for row in rows if row.get("status") == "failed"]
    assert not failed, failed
    emit({**{key: round(value, 3) for key, value in result.items()}, "slides": len(rows),
          "slide_s": round(sum(float(row["seconds"]) for row in rows), 3), "load": load_average()})


def report(results: dict[str, list[dict[str, Any]]], slides: int) -> None:
    rows, medians = [], {}
    for side, runs in results.items():
        wall, slide_s = median([r["seconds"] for r in runs]), median([r["slide_s"] for r in runs])
        medians[side] = wall
        rows.append([side, wall, 3600 * slides / wall, median([r["startup_s"] for r in runs]), slide_s,
                     wall - slide_s / (2 if side == "cohort2" else 1)])
    print(f"\n{slides} slides; medians over {len(results['single'])} rounds")
    print(table(rows, ["side", "wall s", "slides per hour", "startup s", "slide time s", "rest s"]))
    single, one, two = (medians[side] for side in SIDES)
    print(f"cohort overhead, 1 worker against the single process: {one - single:+.2f} s in all = "
          f"{1000 * (one - single) / slides:+.0f} ms per slide = {100 * (one / single - 1):+.1f}% (goal <= 5%)")
    print(f"scaling 1 -> 2 workers: {one / two:.2f}x slides per hour = efficiency {one / two / 2:.2f}")


def main() -> None:
    parser = slide_parser(__doc__.splitlines()[0], model="small", model_mpp=0.5, slide_side=2048)
    parser.add_argument("--slides", type=int, default=8)
    parser.add_argument("--folder", default="", help=argparse.SUPPRESS)
    if (start := started(parser, run_worker)) is None:
        return
    args, inline = start
    count = 2 if args.smoke else args.slides
    print(f"model: {MODELS[args.model].describe()} at {args.model_mpp} µm/px; {count} slides of {args.slide_side} x "
          f"{args.slide_side} at 0.5 µm/px, {MARGIN}-px glass margin; load average before: {load_average()}",
          flush=True)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        (folder / "slides").mkdir()
        side, mosaic = args.slide_side, SMOKE_MOSAIC if args.smoke else MOSAIC
        for seed in range(count):
            write_slide(folder / "slides" / f"slide{seed:02d}.svs", side, side,
                        (MARGIN, MARGIN, side - MARGIN, side - MARGIN), seed=seed, mosaic_side=mosaic)
        write_slide_project(folder / "project", MODELS[args.model], model_mpp=args.model_mpp)
        measured(SCRIPT, ["--side", "prepare", "--folder", str(folder)], inline)
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in SIDES}
        for round_ in range(args.rounds):
            for name in SIDES:
                result = measured(SCRIPT, ["--side", name, "--folder", str(folder)], inline)
                results[name].append(result)
                print(f"[round {round_ + 1}] {name:8s} {result['seconds']:7.2f} s, startup {result['startup_s']:5.2f} s, "
                      f"slide time {result['slide_s']:7.2f} s, {result['slides']} slides (load {result['load']})",
                      flush=True)
    report(results, count)


if __name__ == "__main__":
    main()
