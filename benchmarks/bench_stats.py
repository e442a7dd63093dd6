"""Time ``collect_stats`` on N synthetic 512x512 image/mask pairs (goal: 1,000 pairs in < 60 s on 2 cores).

    .venv/bin/python benchmarks/bench_stats.py [--pairs 1000] [--workers 2] [--keep DIR]

Images are pink "tissue" with purple blobs over a fixed grain texture (so PNG decoding costs about
what real H&E tiles cost); masks paint the blobs in the class colours with a few off-palette pixels.
The pairs are split 80/20 into train and test. Generation time is printed but not part of the figure.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from segkit.classes import ClassInfo, ClassTable
from segkit.stats import SplitFolders, collect_stats

SIDE = 512
TABLE = ClassTable(
    (
        ClassInfo("background", (0, 0, 0)),
        ClassInfo("benign", (0, 255, 0)),
        ClassInfo("malignant", (255, 0, 0)),
    )
)


def make_pair(index: int, grain: np.ndarray, images: Path, masks: Path) -> None:
    """One pink tile with 5-20 blobs and its mask; ``index`` seeds everything, so runs are repeatable."""
    rng = np.random.default_rng(index)
    image = Image.new("RGB", (SIDE, SIDE), (236, 180, 210))
    mask = Image.new("RGB", (SIDE, SIDE), (0, 0, 0))
    paint_image, paint_mask = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    for _ in range(int(rng.integers(5, 21))):
        x, y = rng.integers(0, SIDE, 2)
        rx, ry = rng.integers(6, 40, 2)
        box = (int(x - rx), int(y - ry), int(x + rx), int(y + ry))
        paint_image.ellipse(box, fill=(int(rng.integers(90, 150)), 60, int(rng.integers(140, 200))))
        paint_mask.ellipse(box, fill=(0, 255, 0) if rng.random() < 0.5 else (255, 0, 0))
    shift = rng.integers(0, SIDE, 2)
    textured = np.asarray(image, dtype=np.int16) + np.roll(grain, tuple(shift), axis=(0, 1))[:, :, None]
    # compress_level=1: writing is 3x faster and decoding (what is measured) costs about the same.
    tile = Image.fromarray(np.clip(textured, 0, 255).astype(np.uint8))
    tile.save(images / f"tile_{index:05d}.png", compress_level=1)
    mask_array = np.array(mask)
    mask_array[rng.integers(0, SIDE, 20), rng.integers(0, SIDE, 20)] = (0, 120, 0)  # export noise
    Image.fromarray(mask_array).save(masks / f"tile_{index:05d}.png", compress_level=1)


def generate(root: Path, pairs: int) -> list[SplitFolders]:
    grain = np.random.default_rng(0).normal(0, 12, (SIDE, SIDE)).astype(np.int16)
    splits = [SplitFolders(name, root / name / "images", root / name / "masks") for name in ("train", "test")]
    for split in splits:
        split.images.mkdir(parents=True, exist_ok=True)
        split.masks.mkdir(parents=True, exist_ok=True)
    for index in range(pairs):
        split = splits[0] if index % 5 else splits[1]
        make_pair(index, grain, split.images, split.masks)
    return splits


def run(root: Path, pairs: int, workers: int) -> None:
    started = time.perf_counter()
    splits = generate(root, pairs)
    print(f"generated {pairs} pairs of {SIDE}x{SIDE} in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    stats = collect_stats(splits, TABLE, workers=workers)
    wall = time.perf_counter() - started
    print(f"collect_stats(workers={workers}): {wall:.2f} s wall, {pairs / wall:.1f} pairs/s")
    for split in stats.splits:
        fractions = ", ".join(f"{c.name} {c.fraction:.2%}" for c in split.classes)
        print(f"  {split.name}: {split.pairs} pairs, {fractions}, far pixels {split.far_pixels}")
    print(f"  near-duplicate clusters: {len(stats.duplicates)} ({sum(c.size for c in stats.duplicates)} images)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="generate into this folder and leave it there")
    args = parser.parse_args()
    if args.keep:
        run(args.keep, args.pairs, args.workers)
        return
    with tempfile.TemporaryDirectory(prefix="segkit-bench-stats-") as folder:
        run(Path(folder), args.pairs, args.workers)


if __name__ == "__main__":  # the process pool re-imports this module in its workers
    main()
