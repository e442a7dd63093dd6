"""Peak RSS and time of writing a slide's class mask as a pyramidal OME-TIFF, at several slide sizes.

    .venv/bin/python benchmarks/bench_slide_pyramid.py [--sizes 4096 8192 16384] [--tile 256]

Each size runs in a fresh process (``benchkit.workers.worker``): it imports segkit.slides.pyramid and
tifffile, saves a small pyramid once (so the libraries' own memory is in the baseline), then fills a
``size`` x ``size`` uint8 :class:`MaskCanvas` block by block, as the slide engine will (512 x 512
blocks of a blocky five-class pattern), and saves its pyramid (deflate tiles, every level down to one
tile). "growth" is the peak RSS (``VmHWM``) over the baseline: what the canvas and the save cost.
A whole level 0 in memory would take ``size**2`` bytes (256 MiB at 16384). The scratch file and the
output go to a temporary folder (``--folder`` to choose one).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.clock import peak_rss_mb
from benchkit.tables import machine, table
from benchkit.workers import add_worker_options, emit, ran_as_worker, worker

if TYPE_CHECKING:
    import numpy as np

#: the engine's blocks are its model tiles; 512 is a typical one
BLOCK = 512


def class_pattern(x: int, y: int, width: int, height: int) -> np.ndarray:
    """Five classes in 37 x 53-pixel cells: borders in every tile, so deflate has work to do."""
    import numpy as np

    rows = np.arange(y, y + height)[:, None] // 37
    columns = np.arange(x, x + width)[None, :] // 53
    return ((rows + columns) % 5).astype(np.uint8)


def run_worker(args: argparse.Namespace) -> None:
    from segkit.slides.pyramid import MaskCanvas

    folder = Path(args.folder)
    with MaskCanvas(folder, 64, 64) as warm_up:  # tifffile, zlib and numpy's buffers into the baseline
        warm_up.save_pyramid(folder / "warm-up.ome.tif", tile=32)
    baseline = peak_rss_mb()
    started = time.perf_counter()
    with MaskCanvas(folder, args.size, args.size) as canvas:
        for y in range(0, args.size, BLOCK):
            for x in range(0, args.size, BLOCK):
                canvas.write(x, y, class_pattern(x, y, min(BLOCK, args.size - x), min(BLOCK, args.size - y)))
        filled = time.perf_counter()
        output = canvas.save_pyramid(folder / "mask.ome.tif", tile=args.tile, microns_per_pixel=0.5)
    saved = time.perf_counter()
    emit({"size": args.size, "baseline_mb": round(baseline, 1), "growth_mb": round(peak_rss_mb() - baseline, 1),
          "fill_s": round(filled - started, 2), "save_s": round(saved - filled, 2),
          "file_mb": round(output.stat().st_size / 2**20, 2)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192, 16384])
    parser.add_argument("--size", type=int, default=4096, help=argparse.SUPPRESS)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--folder", type=Path, default=None)
    add_worker_options(parser)
    args = parser.parse_args()
    if ran_as_worker(args, run_worker):
        return
    print(machine())
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(dir=args.folder) as folder:
            result = worker(Path(__file__), ["--size", str(size), "--tile", str(args.tile), "--folder", folder])
        rows.append([f"{size} x {size}", f"{size * size / 2**20:.0f}", result["baseline_mb"], result["growth_mb"],
                     result["fill_s"], result["save_s"], result["file_mb"]])
    print(table(rows, ["canvas", "level 0 MiB", "baseline MiB", "growth MiB", "fill s", "save s", "file MiB"]))


if __name__ == "__main__":
    main()
