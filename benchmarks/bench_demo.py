"""The embedded demo, as the README's first command runs it: wall time and test Dice.

    python benchmarks/bench_demo.py [--work /tmp/segkit-demo] [--picture docs/demo-result.png]

Runs ``segkit train``, ``segkit eval`` and ``segkit infer`` on ``projects/demo.toml`` in a fresh
output folder (tile generation included in the training time), prints the wall times and the
test-split Dice, checks them against the goals (train <= 5 min on 2 cores, mean foreground
Dice >= 0.80, benign and malignant >= 0.70) and writes a picture of three test tiles: input,
ground truth, prediction.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "projects" / "demo.toml"


def timed(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from segkit.cli.main import main; main()", *args], check=True)
    return time.perf_counter() - started


def picture(run: Path, target: Path, count: int = 3) -> None:
    """Rows of input | ground truth | prediction, the figure the README shows."""
    from segkit.data.resize import montage

    test = run / "synthetic-he" / "test"
    names = sorted(p.name for p in (test / "images").iterdir())[:count]
    rows = [[np.asarray(Image.open(folder / name).convert("RGB")) for folder in
             (test / "images", test / "masks", run / "infer")] for name in names]
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(montage(rows)).save(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/segkit-demo"))
    parser.add_argument("--picture", type=Path, default=None, help="write the result picture here")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    output = ["--set", f"project.output_dir={args.work}", "--set", f"callbacks.0.images={args.work}/synthetic-he/test/images",
              "--set", f"infer.images={args.work}/synthetic-he/test/images"]
    train = timed("train", str(PROJECT), "--quiet", *output)
    evaluate = timed("eval", str(PROJECT), *output)
    infer = timed("infer", str(PROJECT), *output)
    with (args.work / "evaluation.csv").open() as handle:
        figures = {row["metric"]: float(row["value"]) for row in csv.DictReader(handle)}
    print(f"\ndemo wall time: train {train / 60:.2f} min, eval {evaluate:.1f} s, infer {infer:.1f} s")
    for name in ("mean_foreground_dice", "dice_benign", "dice_malignant", "dice_coef_multiclass"):
        print(f"  {name:22s} {figures[name]:.4f}")
    goals = [("train <= 5 min", train <= 300), ("mean foreground Dice >= 0.80", figures["mean_foreground_dice"] >= 0.8),
             ("benign and malignant >= 0.70", min(figures["dice_benign"], figures["dice_malignant"]) >= 0.7)]
    for goal, held in goals:
        print(f"  goal {goal}: {'held' if held else 'MISSED'}")
    if args.picture:
        picture(args.work, args.picture)
        print(f"picture: {args.picture}")


if __name__ == "__main__":
    main()
