"""Slide readers: level-0 megapixels per second each built-in reader gives, reading a slide region by region.

    .venv/bin/python benchmarks/bench_slide_readers.py [--side 4096] [--region 512] [--rounds 3]

Writes a ``side`` x ``3/4 side`` synthetic-he mosaic (tests/slide_files.py) as an Aperio-style SVS
and as an OME-TIFF, each zlib and JPEG, 256-pixel tiles, 4 levels; then every reader that reads the
layout whole reads level 0 in ``region`` x ``region`` reads, one thread, a fresh open per round.
The figure is the best round (the machine is shared). Nothing is kept: the slides go in a temporary folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT / "tests")]

from benchkit.clock import load_average  # noqa: E402
from benchkit.tables import machine, table  # noqa: E402
from segkit.plugins import get_registry  # noqa: E402
from segkit.slides.open_slide import open_slide  # noqa: E402
from slide_files import synthetic_slide, write_pyramid  # noqa: E402

#: the readers that read each layout's levels (OpenSlide sees only an OME-TIFF's first level)
READERS = {"aperio": ("openslide", "tiffslide"), "ome": ("ome-tiff", "tiffslide")}
SUFFIX = {"aperio": ".svs", "ome": ".ome.tif"}


def seconds_to_read(path: Path, reader: str, region: int) -> float:
    with open_slide(path, get_registry(), reader) as slide:
        width, height = slide.level_dimensions[0]
        started = time.perf_counter()
        for y in range(0, height, region):
            for x in range(0, width, region):
                slide.read_region(0, x, y, region, region)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=4096, help="level-0 width (height is 3/4 of it)")
    parser.add_argument("--region", type=int, default=512, help="side of each read")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # one 1024x768 mosaic repeated: rendering the whole slide would take longer than reading it
    picture = np.tile(synthetic_slide(1024, 768, seed=2, margin=0)[0], (args.side // 1024, args.side // 1024, 1))
    megapixels = picture.shape[0] * picture.shape[1] / 1e6
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for style, readers in READERS.items():
            for compression in ("zlib", "jpeg"):
                path = Path(folder) / f"{style}-{compression}{SUFFIX[style]}"
                write_pyramid(path, picture, style=style, compression=compression, tile=256, levels=4)  # type: ignore[arg-type]
                for reader in readers:
                    best = min(seconds_to_read(path, reader, args.region) for _ in range(args.rounds))
                    rows.append((style, compression, reader, f"{megapixels / best:.1f}", f"{best:.2f}"))
    print(f"{megapixels:.1f} MP at level 0, {args.region}x{args.region} reads, best of {args.rounds}")
    print(table(rows, ("layout", "tiles", "reader", "MP/s", "seconds")))
    print(f"machine: {machine()}; load average after: {load_average()}")


if __name__ == "__main__":
    main()
