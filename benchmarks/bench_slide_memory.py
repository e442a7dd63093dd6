"""Whole slides: peak RSS of ``segment_slide`` on slides of ~25, ~100 and ~400 megapixels of tissue.

    .venv/bin/python benchmarks/bench_slide_memory.py [--model small] [--model-mpp 1.0]
    .venv/bin/python benchmarks/bench_slide_memory.py --smoke     # tiny slides, seconds

Two series, because the engine's band (``tile height x level width x (classes + 1)`` float32, see
``segkit/engine/slide_infer.py``) grows with a slide's WIDTH and nothing else should:

* **square**: 5500, 10500 and 20500 pixels a side;
* **same width**: 5500 pixels wide, 5500, 20500 and 80500 tall (the width of the smallest square).

Every slide has a 256-pixel glass margin (tissue ~24.8, ~99.8 and ~399 MP at level 0, 0.5 µm/px),
is written once into a temporary folder (``benchkit.slides.write_slide``: JPEG tiles from a
generator) and segmented in a fresh process (``benchkit.workers.worker``) that loads the run's
model once, segments a 2048 x 2048 warm-up slide (TensorFlow's kernels, the readers' and codecs'
buffers into the baseline), then the measured slide. Figures: the peak RSS (``VmHWM``) after the
warm-up ("baseline") and after the slide ("peak"); growth is the largest slide's peak over the
smallest's (goal <= 10%). Model: ``--model`` (``small``: FlexUNet 256x256, 3 levels, 8 base filters)
read at ``--model-mpp`` µm per pixel (1.0: level 1 of a 0.5 µm/px slide, as tissue models run).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.clock import load_average, peak_rss_mb
from benchkit.slides import MODELS, Box, ensure_model, grid_tiles, load_slide_project, measured, timed_segment_slide
from benchkit.slides import MOSAIC, SMOKE_MOSAIC, write_slide, write_slide_project
from benchkit.slides import slide_parser, started
from benchkit.tables import table
from benchkit.workers import emit

SCRIPT = Path(__file__).resolve()
MARGIN = 256
SQUARE = [(5500, 5500), (10500, 10500), (20500, 20500)]
SAME_WIDTH = [(5500, 5500), (5500, 20500), (5500, 80500)]
SMOKE = {"square": [(512, 512), (1024, 1024)], "same width": [(512, 512), (512, 2048)]}
WARM_UP = 2048


def tissue_box(width: int, height: int, margin: int) -> Box:
    return (margin, margin, width - margin, height - margin)


def run_worker(args: argparse.Namespace) -> None:
    from segkit.engine.best_model import load_best_model
    from segkit.engine.runtime import import_tensorflow

    project, registry = load_slide_project(Path(args.project))
    ensure_model(project, registry)  # the first worker saves it
    import_tensorflow()
    model = load_best_model(project, registry)
    folder = Path(args.folder)
    timed_segment_slide(project, registry, Path(args.warm_up), folder / "warm-up", model)
    baseline = peak_rss_mb()
    result = timed_segment_slide(project, registry, Path(args.slide), folder / "slide", model)
    emit({**result, "baseline_mb": round(baseline, 1), "load": load_average()})


def measure(series: dict[str, list[tuple[int, int]]], project: Path, folder: Path, smoke: bool,
            inline: Callable[[list[str]], None] | None) -> list[list[object]]:
    """One row per slide: each slide written, segmented in its own process, then deleted."""
    margin, warm_side, mosaic = (64, 512, SMOKE_MOSAIC) if smoke else (MARGIN, WARM_UP, MOSAIC)
    warm_up = write_slide(folder / "warm-up.svs", warm_side, warm_side, tissue_box(warm_side, warm_side, margin),
                          mosaic_side=mosaic)
    done: dict[tuple[int, int], dict[str, object]] = {}
    rows: list[list[object]] = []
    for name, sizes in series.items():
        for width, height in sizes:
            if (width, height) not in done:  # the smallest square is the same-width series' first slide
                box = tissue_box(width, height, margin)
                slide = write_slide(folder / f"slide-{width}x{height}.svs", width, height, box, mosaic_side=mosaic)
                with tempfile.TemporaryDirectory(dir=folder) as out:
                    done[(width, height)] = measured(SCRIPT, ["--project", str(project), "--slide", str(slide),
                                                              "--warm-up", str(warm_up), "--folder", out], inline)
                done[(width, height)]["grid_tiles"] = grid_tiles(*load_slide_project(project), slide, box)
                slide.unlink()
            result = done[(width, height)]
            rows.append([name, f"{width} x {height}", result["tissue_mp"], result["tiles"], result["grid_tiles"],
                         result["level"], result["baseline_mb"], result["peak_rss_mb"], result["seconds"],
                         result["load"]])
            print(f"{name}: {width} x {height}: {json.dumps(result)}", flush=True)
    return rows


def growth_lines(rows: list[list[object]]) -> list[str]:
    lines = []
    for name in dict.fromkeys(str(row[0]) for row in rows):
        peaks = [float(row[7]) for row in rows if row[0] == name]  # type: ignore[arg-type]
        lines.append(f"growth {name}: {peaks[0]:.1f} -> {peaks[-1]:.1f} MiB = {100 * (peaks[-1] / peaks[0] - 1):+.1f}% "
                     "(goal <= 10%)")
    return lines


def main() -> None:
    parser = slide_parser(__doc__.splitlines()[0], model="small", model_mpp=1.0)
    parser.add_argument("--folder", type=Path, default=None, help="where the slides are written (a temporary folder)")
    parser.add_argument("--project", default="", help=argparse.SUPPRESS)
    parser.add_argument("--slide", default="", help=argparse.SUPPRESS)
    parser.add_argument("--warm-up", default="", help=argparse.SUPPRESS)
    if (start := started(parser, run_worker)) is None:
        return
    args, inline = start
    series = SMOKE if args.smoke else {"square": SQUARE, "same width": SAME_WIDTH}
    model = MODELS[args.model]
    print(f"model: {model.describe()} at {args.model_mpp} µm/px; slides at 0.5 µm/px, {64 if args.smoke else MARGIN}-px glass margin; "
          f"load average before: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(dir=args.folder) as temporary:
        folder = Path(temporary)
        project = write_slide_project(folder / "project", model, model_mpp=args.model_mpp)
        rows = measure(series, project, folder, args.smoke, inline)
    print(table(rows, ["series", "slide (level 0)", "tissue MP", "tiles", "grid tiles on the tissue box", "level",
                       "baseline MiB", "peak MiB", "seconds", "load"]))
    print("\n".join(growth_lines(rows)))


if __name__ == "__main__":
    main()
