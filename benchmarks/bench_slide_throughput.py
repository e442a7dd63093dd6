"""Whole slides: tissue megapixels per second of ``segment_slide`` against the same tiles given to
``segkit infer`` as PNG files, A B A B, and the model's achieved GFLOP/s against the CPU's FP32 peak.

    .venv/bin/python benchmarks/bench_slide_throughput.py [--slide-side 3072] [--rounds 2] [--model bench]
    .venv/bin/python benchmarks/bench_slide_throughput.py --smoke     # tiny slide and model, seconds

One slide (``benchkit.slides.write_slide``: ``--side`` square at 0.5 µm/px, a 256-pixel glass margin)
and one saved model (``--model bench``: the benchmarks' FlexUNet 256x256, 6 levels, 16 base filters,
7x7 first kernels, read at level 0), in one temporary folder. A "prepare" process cuts out the very
tiles ``segment_slide`` reads (its own planning: tissue mask, level, grid) as PNG files. Then, each
side a fresh process (``benchkit.workers.worker``), alternating:

* **slide**: ``segment_slide(project, slide, out, registry)`` (reads the tissue tiles, predicts,
  blends, writes the OME-TIFF mask pyramid and the tissue PNG);
* **images**: ``segkit.engine.infer.infer(project)`` on the tile PNGs (reads, predicts, writes a mask
  and an overlay PNG per tile), ``[infer] batch_size`` as ``[slides]`` uses it;
* **model** (the ceiling): the model alone on the same tiles, decoded in memory beforehand.

Each side first runs once on a small warm-up input (a 1024 x 1024 slide / 8 of the tiles), then
the timed call, which loads the model itself, as ``segkit infer`` does. The figure is the slide's
tissue area at level 0 (its tissue mask) over wall time; both sides predict the same tiles.

Model time is the time spent inside the model calls (``slide_infer.tile_softmax`` / ``infer``'s
``segment``, wrapped for the timed call); "outside" is the rest of the call's wall time. GFLOP/s
= tiles x FLOPs of one forward pass / model time, the FLOPs counted from the layer shapes
(``bench_flops.analytic_flops``: 2 x multiply-adds of every convolution and transposed
convolution; activations, pooling and the softmax left out). Peak: ``bench_flops.peak_gflops``
(cores x FMA units x FP32 lanes x 2 x the clock ``/proc/cpuinfo`` shows).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_flops import analytic_flops, peak_gflops
from benchkit.clock import load_average
from benchkit.slides import MODELS, ModelClock, ensure_model, grid_tiles, load_slide_project, measured
from benchkit.slides import MOSAIC, SMOKE_MOSAIC, timed_segment_slide
from benchkit.slides import write_slide, write_slide_project
from benchkit.slides import alternated, slide_parser, started
from benchkit.tables import median, table
from benchkit.workers import emit

SCRIPT = Path(__file__).resolve()
MARGIN = 256
WARM_UP_SIDE = 1024
WARM_UP_TILES = 8


def cut_tiles(project: Any, registry: Any, slide: Path, folder: Path) -> int:
    """The tiles ``segment_slide`` reads, each as ``folder/tile_NNNNN.png``; returns how many."""
    from segkit.data.images import write_png
    from segkit.engine import slide_infer

    # segment_slide's own planning (private, read here on purpose): the same level, tissue and grid
    with slide_infer.planned_slide(project, slide, registry, project.model.microns_per_pixel, None, None) as setup:
        folder.mkdir(parents=True)
        for index, tile in enumerate(setup.tiles):
            pixels = setup.slide.read_region(tile.level, tile.x, tile.y, tile.read_width, tile.read_height)
            write_png(folder / f"tile_{index:05d}.png", pixels, compress_level=1)
        return len(setup.tiles)


def prepare(project: Any, registry: Any, folder: Path) -> dict[str, Any]:
    """The model saved, the tiles cut out (and a few copied for the warm-up), the model's FLOPs."""
    from segkit.engine.best_model import load_best_model

    ensure_model(project, registry)
    tiles = cut_tiles(project, registry, folder / "slide.svs", folder / "tiles")
    (folder / "warm-tiles").mkdir()
    for path in sorted((folder / "tiles").glob("*.png"))[:WARM_UP_TILES]:
        shutil.copy(path, folder / "warm-tiles" / path.name)
    return {"tiles": tiles, "flops": analytic_flops(load_best_model(project, registry))}


def slide_side(project: Any, registry: Any, folder: Path, out: Path) -> dict[str, Any]:
    timed_segment_slide(project, registry, folder / "warm-up.svs", out / "warm")
    return timed_segment_slide(project, registry, folder / "slide.svs", out / "timed")


def images_side(folder: Path, out: Path) -> dict[str, Any]:
    """``infer`` on the warm-up tiles, then on every tile, its ``segment`` calls timed."""
    from segkit.engine import infer as infer_module

    def project_on(images: Path, output: Path) -> Any:
        return load_slide_project(folder / "project" / "tiny.toml",
                                  [f"infer.images={images}", f"infer.output={output}"])[0]

    infer_module.infer(project_on(folder / "warm-tiles", out / "warm"))
    clock, real = ModelClock(), infer_module.segment
    infer_module.segment = clock.wrap(real)  # type: ignore[assignment]
    try:
        started, cpu = time.perf_counter(), time.process_time()
        count = infer_module.infer(project_on(folder / "tiles", out / "timed")).count
        figures = clock.figures(started, cpu)
    finally:
        infer_module.segment = real  # type: ignore[assignment]
    return {**figures, "tiles": count}


def model_side(folder: Path) -> dict[str, Any]:
    """The ceiling: the model alone on the same tiles, already decoded in memory (``resized_softmax``,
    the call ``segment_slide`` makes per batch, over every tile)."""
    from segkit.data.images import read_image
    from segkit.engine.best_model import load_best_model
    from segkit.engine.components import prediction_for
    from segkit.engine.predict import resized_softmax
    from segkit.engine.runtime import import_tensorflow

    project, registry = load_slide_project(folder / "project" / "tiny.toml")
    import_tensorflow()
    model, how = load_best_model(project, registry), prediction_for(project)
    tiles = [read_image(path, 3) for path in sorted((folder / "tiles").glob("*.png"))]
    resized_softmax(model, tiles[:WARM_UP_TILES], how)
    started, cpu = time.perf_counter(), time.process_time()
    resized_softmax(model, tiles, how)
    seconds, cpu_s = round(time.perf_counter() - started, 3), round(time.process_time() - cpu, 3)
    return {"seconds": seconds, "cpu_s": cpu_s, "model_s": seconds, "model_cpu_s": cpu_s, "tiles": len(tiles)}


def run_worker(args: argparse.Namespace) -> None:
    folder = Path(args.folder)
    project, registry = load_slide_project(folder / "project" / "tiny.toml")
    if args.side == "prepare":
        emit(prepare(project, registry, folder))
        return
    out = Path(tempfile.mkdtemp(prefix="slide-throughput-", dir=folder))
    try:
        sides = {"slide": lambda: slide_side(project, registry, folder, out), "images": lambda: images_side(folder, out),
                 "model": lambda: model_side(folder)}
        result = sides[args.side]()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    import keras

    emit({**result, "side": args.side, "backend": keras.backend.backend(), "load": load_average()})


def report(results: dict[str, list[dict[str, Any]]], prepared: dict[str, Any], tissue_mp: float,
           fma_units: int, peak_given: float | None) -> None:
    peak, how = (peak_given, "given") if peak_given else peak_gflops(fma_units, None)
    cores = os.cpu_count() or 1
    work = prepared["tiles"] * prepared["flops"] / 1e9
    rows, per_cpu = [], []
    for side, runs in results.items():
        seconds, model_s = median([r["seconds"] for r in runs]), median([r["model_s"] for r in runs])
        cpu_s, model_cpu_s = median([r["cpu_s"] for r in runs]), median([r["model_cpu_s"] for r in runs])
        rows.append([side, seconds, tissue_mp / seconds, tissue_mp / model_s, work / model_s, 100 * work / model_s / peak,
                     100 * (1 - model_s / seconds)])
        per_cpu.append([side, cpu_s, tissue_mp / cpu_s, work / model_cpu_s, 100 * work / model_cpu_s / (peak / cores),
                        100 * (1 - model_cpu_s / cpu_s)])
    print(f"\n{tissue_mp:.2f} MP of tissue, {prepared['tiles']} tiles, {prepared['flops'] / 1e9:.3f} GFLOP a tile "
          f"(forward, analytic); peak {how} = {peak:.0f} GFLOP/s; medians over {len(results['slide'])} rounds")
    print(table(rows, ["side", "seconds", "tissue MP/s", "MP/s in model time", "GFLOP/s (model time)",
                       "% of peak", "% of wall outside model"]))
    print(f"\nper CPU-second of this process (all threads; a core's peak = {peak / cores:.0f} GFLOP/s)")
    print(table(per_cpu, ["side", "CPU s", "tissue MP per CPU-s", "GFLOP per model CPU-s", "% of a core's peak",
                          "% of CPU outside model"]))
    print(f"slide / images: {rows[0][2] / rows[1][2]:.2f}x tissue MP/s (goal >= 1.0), "
          f"{per_cpu[0][2] / per_cpu[1][2]:.2f}x per CPU-second")
    print(f"slide / model alone: {rows[0][2] / rows[2][2]:.2f}x tissue MP/s, {per_cpu[0][2] / per_cpu[2][2]:.2f}x "
          "per CPU-second (the ceiling)")


def main() -> None:
    parser = slide_parser(__doc__.splitlines()[0], model="bench", model_mpp=0.5, slide_side=3072)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--fma-units", type=int, default=2, help="FMA units per core (2 on current x86 server cores)")
    parser.add_argument("--peak-gflops", type=float, default=None,
                        help="the device's FP32 peak (a GPU's); default: the CPU's, from its flags and clock")
    parser.add_argument("--folder", default="", help=argparse.SUPPRESS)
    if (start := started(parser, run_worker)) is None:
        return
    args, inline = start
    model = MODELS[args.model]
    margin = MARGIN if not args.smoke else 64
    print(f"model: {model.describe()} at {args.model_mpp} µm/px, batch {args.batch_size}; slide {args.slide_side} x "
          f"{args.slide_side} at 0.5 µm/px, {margin}-px glass margin; load average before: {load_average()}",
          flush=True)
    mosaic = SMOKE_MOSAIC if args.smoke else MOSAIC
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        side = args.slide_side
        write_slide(folder / "slide.svs", side, side, (margin, margin, side - margin, side - margin), mosaic_side=mosaic)
        warm = WARM_UP_SIDE if not args.smoke else 384
        write_slide(folder / "warm-up.svs", warm, warm, (margin, margin, warm - margin, warm - margin), mosaic_side=mosaic)
        write_slide_project(folder / "project", model, model_mpp=args.model_mpp, batch_size=args.batch_size)
        prepared = measured(SCRIPT, ["--side", "prepare", "--folder", str(folder)], inline)
        expected = grid_tiles(*load_slide_project(folder / "project" / "tiny.toml"), folder / "slide.svs",
                              (margin, margin, side - margin, side - margin))
        print(f"{prepared['tiles']} tiles cut out; {expected} grid tiles on the tissue box", flush=True)
        results = alternated(SCRIPT, "--side", ("slide", "images", "model"), folder, args.rounds, inline,
                             lambda result: f", Keras backend {result['backend']}")
    tissue_mp = results["slide"][0]["tissue_mp"]
    report(results, prepared, tissue_mp, args.fma_units, args.peak_gflops)


if __name__ == "__main__":
    main()
