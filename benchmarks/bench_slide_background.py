"""Whole slides: the time ``segment_slide`` takes on a slide that is 70% glass against the same slide all tissue.

    .venv/bin/python benchmarks/bench_slide_background.py [--slide-side 4096] [--rounds 2] [--model bench]
    .venv/bin/python benchmarks/bench_slide_background.py --smoke     # tiny slides and model, seconds

Two slides of the same size (``benchkit.slides.write_slide``, 0.5 µm/px, the same repeated
synthetic-he mosaic): **tissue**, tissue everywhere, and **70% glass**, tissue only in a centred
square of 30% of the area. Each is segmented by the same saved model (``--model bench``: the
benchmarks' FlexUNet 256x256, read at level 0), each run a fresh process (``benchkit.workers.worker``)
that first segments a 1024 x 1024 warm-up slide, A B A B. Goal: 70% glass <= 0.4x the time of
the tissue slide (wall time, and the process's CPU time, which moves less on a shared machine).
Printed with it: the tiles each read (and the grid tiles that touch the tissue
square, what a perfect tissue mask gives), so that the time ratio can be read against the tile ratio.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.clock import load_average
from benchkit.slides import MODELS, Box, ensure_model, grid_tiles, load_slide_project
from benchkit.slides import MOSAIC, SMOKE_MOSAIC, timed_segment_slide, write_slide, write_slide_project
from benchkit.slides import alternated, slide_parser, started
from benchkit.tables import median, table
from benchkit.workers import emit

SCRIPT = Path(__file__).resolve()
TISSUE_SHARE = 0.3
SLIDES = ("tissue", "glass70")


def centred_square(side: int, share: float) -> Box:
    """The centred square holding ``share`` of a ``side`` x ``side`` slide's area."""
    inner = round(side * math.sqrt(share))
    start = (side - inner) // 2
    return (start, start, start + inner, start + inner)


def run_worker(args: argparse.Namespace) -> None:
    folder = Path(args.folder)
    project, registry = load_slide_project(folder / "project" / "tiny.toml")
    ensure_model(project, registry)  # the first worker saves it
    out = Path(tempfile.mkdtemp(prefix="slide-background-", dir=folder))
    try:
        timed_segment_slide(project, registry, folder / "warm-up.svs", out / "warm")
        result = timed_segment_slide(project, registry, folder / f"{args.slide}.svs", out / "timed")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    emit({**result, "slide": args.slide, "load": load_average()})


def main() -> None:
    parser = slide_parser(__doc__.splitlines()[0], model="bench", model_mpp=0.5, slide_side=4096)
    parser.add_argument("--folder", default="", help=argparse.SUPPRESS)
    parser.add_argument("--slide", default="tissue", help=argparse.SUPPRESS)
    if (start := started(parser, run_worker)) is None:
        return
    args, inline = start
    model, side = MODELS[args.model], args.slide_side
    print(f"model: {model.describe()} at {args.model_mpp} µm/px; slides {side} x {side} at 0.5 µm/px; "
          f"load average before: {load_average()}", flush=True)
    boxes = {"tissue": (0, 0, side, side), "glass70": centred_square(side, TISSUE_SHARE)}
    mosaic = SMOKE_MOSAIC if args.smoke else MOSAIC
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        for name, box in boxes.items():
            write_slide(folder / f"{name}.svs", side, side, box, mosaic_side=mosaic)
        warm = 1024 if not args.smoke else 384
        write_slide(folder / "warm-up.svs", warm, warm, centred_square(warm, 0.5), mosaic_side=mosaic)
        project = write_slide_project(folder / "project", model, model_mpp=args.model_mpp)
        expected = {name: grid_tiles(*load_slide_project(project), folder / f"{name}.svs", box)
                    for name, box in boxes.items()}
        results = alternated(SCRIPT, "--slide", SLIDES, folder, args.rounds, inline,
                             lambda result: f", {result['tissue_mp']:.2f} MP of tissue")
    rows = [[name, *(median([r[key] for r in results[name]]) for key in ("seconds", "cpu_s", "model_s")),
             results[name][0]["tiles"], expected[name], results[name][0]["tissue_mp"]] for name in SLIDES]
    print(f"\nmedians over {args.rounds} rounds")
    print(table(rows, ["slide", "seconds", "CPU s", "model s", "tiles read", "grid tiles on the tissue box",
                       "tissue MP"]))
    print(f"70% glass / all tissue: {rows[1][1] / rows[0][1]:.2f}x time (goal <= 0.4), "
          f"{rows[1][2] / rows[0][2]:.2f}x CPU time, {rows[1][4] / rows[0][4]:.2f}x tiles")


if __name__ == "__main__":
    main()
