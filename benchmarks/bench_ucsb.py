"""UCSB breast-cancer-cell at full resolution: segkit vs a classical Otsu baseline, in-region Dice.

    python benchmarks/bench_ucsb.py [--data ../shared/data/ucsb-bcc-sample] [--work /tmp/segkit-ucsb-bench] [--split-seed N]

1. ``segkit prepare ucsb-bcc`` with a group-aware split and the region outside the experts'
   annotation marked ignore (``--region``, default the labelled nuclei as ``projects/ucsb-bcc.toml``
   says, + ``--margin`` 16 px; the bounding-box region is prepared and scored too);
2. ``segkit train projects/ucsb-bcc.toml`` on it (timed), ``segkit eval`` and ``segkit infer``;
3. on the test cores, inside the annotated region only: foreground Dice of segkit's masks and of
   Otsu's threshold on the hematoxylin channel (scikit-image ``rgb2hed``), the usual classical
   nucleus segmentation. Needs ``pip install ".[bench]"``;
4. where each method loses Dice (outlined nuclei missed whole, missed at their borders, found
   beyond an outline, found where nothing is outlined), and what the experts' own mask scores
   against itself shrunk or grown by one pixel: the scale of an outline drawn one pixel off.

``--score-only`` prints step 3 and 4 again for the ``--work`` folder of an earlier run.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
IGNORE = (255, 255, 255)


def segkit(*args: str) -> None:
    subprocess.run([sys.executable, "-c", "from segkit.cli.main import main; main()", *args], check=True)


def dataset_overrides(prepared: Path, run: Path) -> list[str]:
    values = [f"project.output_dir={run}", f"callbacks.0.images={prepared}/test/images",
              f"infer.images={prepared}/test/images"]
    for split in ("train", "valid", "test"):
        values += [f"dataset.{split}.images={prepared}/{split}/images", f"dataset.{split}.masks={prepared}/{split}/masks"]
    return [part for value in values for part in ("--set", value)]


def otsu_nuclei(image: np.ndarray, fitted_on: np.ndarray) -> np.ndarray:
    """Nuclei = hematoxylin above Otsu's threshold, the threshold computed on the pixels where
    ``fitted_on`` is true: the whole image (what the method sees at test time, like segkit), or
    only the annotated region (a stronger baseline, as it borrows the experts' annotation)."""
    from skimage.color import rgb2hed
    from skimage.filters import threshold_otsu

    hematoxylin = rgb2hed(image)[:, :, 0]
    return hematoxylin > threshold_otsu(hematoxylin[fitted_on])


def dice(truth: np.ndarray, predicted: np.ndarray) -> tuple[int, int]:
    """(2·|A∩B|, |A|+|B|), summed over images before dividing (global Dice)."""
    return 2 * int(np.logical_and(truth, predicted).sum()), int(truth.sum() + predicted.sum())


def touching(guess: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The connected blobs of ``guess`` that overlap a labelled nucleus: a blob that touches none
    is most often a nucleus nobody outlined, which says nothing about either method."""
    from scipy import ndimage

    blobs, _ = ndimage.label(guess)
    kept = np.unique(blobs[guess & truth])
    return np.isin(blobs, kept[kept > 0])


def dice_losses(truth: np.ndarray, guess: np.ndarray, attached: np.ndarray) -> np.ndarray:
    """Pixels that cost Dice, split so that 1 - Dice = their sum / (|truth| + |guess|): missed
    pixels of outlined nuclei the guess finds (< 20% covered: ``missed``) or not (``border``),
    guessed pixels in blobs touching an outlined nucleus (``attached``, from :func:`touching`:
    ``beyond``) or none (``unlabelled``)."""
    from scipy import ndimage

    nuclei, count = ndimage.label(truth)
    covered = np.asarray(ndimage.mean(guess, nuclei, np.arange(1, count + 1))) if count else np.zeros(0)
    missed = np.isin(nuclei, np.flatnonzero(covered < 0.2) + 1)
    return np.array([(truth & ~guess & missed).sum(), (truth & ~guess & ~missed).sum(),
                     (guess & ~truth & attached).sum(), (guess & ~truth & ~attached).sum(), truth.sum() + guess.sum()])


def score(prepared: Path, predictions: Path) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Global in-region Dice of segkit and the baselines on the test split; ``*_outlined``: the
    same, counting only predicted blobs that touch an outlined nucleus; ``outline_in`` and
    ``outline_out``: the experts' own mask shrunk or grown by one pixel, against itself (what a
    one-pixel disagreement on every outline costs). Also segkit's and Otsu's :func:`dice_losses`."""
    from scipy import ndimage

    totals: dict[str, list[int]] = {}
    losses = {"segkit": np.zeros(5, np.int64), "otsu": np.zeros(5, np.int64)}
    for mask_path in sorted((prepared / "test" / "masks").glob("*.png")):
        mask = np.asarray(Image.open(mask_path).convert("RGB"))
        image = np.asarray(Image.open(prepared / "test" / "images" / mask_path.name).convert("RGB"))
        predicted = np.asarray(Image.open(predictions / mask_path.name).convert("RGB"))
        region = ~np.all(mask == IGNORE, axis=2)
        truth = np.any(mask != 0, axis=2) & region
        ours = np.any(predicted != 0, axis=2) & region
        guesses = {"segkit": ours, "otsu": otsu_nuclei(image, np.ones_like(region)) & region,
                   "otsu_in_region": otsu_nuclei(image, region) & region}
        guesses |= {f"{name}_outlined": touching(guess, truth) for name, guess in list(guesses.items())}
        for name in losses:
            losses[name] += dice_losses(truth, guesses[name], guesses[f"{name}_outlined"])
        guesses |= {"outline_in": ndimage.binary_erosion(truth), "outline_out": ndimage.binary_dilation(truth) & region}
        parts = {name: dice(truth, guess) for name, guess in guesses.items()}
        same_class = np.all(predicted == mask, axis=2) & truth
        parts["segkit_class_aware"] = (2 * int(same_class.sum()), int(truth.sum() + ours.sum()))
        for name, (overlap, total) in parts.items():
            totals[name] = [totals.get(name, [0, 0])[0] + overlap, totals.get(name, [0, 0])[1] + total]
    return {name: a / b if b else float("nan") for name, (a, b) in totals.items()}, losses


def error_picture(prepared: Path, predictions: Path, out: Path) -> None:
    """The first test image's annotated region, as is and with segkit's answer painted on it:
    green where it agrees with a labelled nucleus, red where it finds a nucleus nobody labelled,
    blue where it misses a labelled one (what docs/ucsb-partial-labels.png shows)."""
    mask_path = sorted((prepared / "test" / "masks").glob("*.png"))[0]
    mask = np.asarray(Image.open(mask_path).convert("RGB"))
    image = np.asarray(Image.open(prepared / "test" / "images" / mask_path.name).convert("RGB")).astype(float)
    found = np.any(np.asarray(Image.open(predictions / mask_path.name).convert("RGB")) != 0, axis=2)
    region = ~np.all(mask == IGNORE, axis=2)
    truth = np.any(mask != 0, axis=2) & region
    painted = image.copy()
    for where, colour in ((truth & found, (0, 255, 0)), (~truth & found & region, (255, 0, 0)), (truth & ~found, (0, 0, 255))):
        painted[where] = painted[where] * 0.4 + np.array(colour) * 0.6
    rows, cols = np.nonzero(region)
    box = np.s_[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
    gap = np.full((rows.max() + 1 - rows.min(), 6, 3), 255.0)
    Image.fromarray(np.concatenate([image[box], gap, painted[box]], axis=1).astype(np.uint8)).save(out, optimize=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ucsb-bcc-sample")
    parser.add_argument("--work", type=Path, default=Path("/tmp/segkit-ucsb-bench"))
    parser.add_argument("--set", action="append", default=[], help="extra --set for the training")
    parser.add_argument("--region", default="nuclei", choices=("bbox", "hull", "nuclei"),
                        help="the preparer's ignore_region for training (scores are given in the bbox region too)")
    parser.add_argument("--margin", type=int, default=16, help="the preparer's ignore_margin")
    parser.add_argument("--split-seed", type=int, default=0,
                        help="the preparer's seed: another seed puts other tissue cores in the test split")
    parser.add_argument("--score-only", action="store_true",
                        help="score the --work folder of an earlier run again, without preparing or training")
    return parser.parse_args()


def prepare_and_train(args: argparse.Namespace, regions: list[str]) -> None:
    """Prepare every region's split, train on the first, eval and infer; prints the training time."""
    for region in regions:
        segkit("prepare", "ucsb-bcc", str(args.data), "--out", str(args.work / f"prepared-{region}"),
               "--option", f"ignore_margin={args.margin}", "--option", f"ignore_region={region}",
               "--option", f"seed={args.split_seed}", "--option", "overwrite=true")
    project = str(ROOT / "projects" / "ucsb-bcc.toml")
    overrides = dataset_overrides(args.work / f"prepared-{args.region}", args.work / "run")
    overrides += [part for value in args.set for part in ("--set", value)]
    started = time.perf_counter()
    segkit("train", project, "--quiet", "--overwrite", *overrides)
    minutes = (time.perf_counter() - started) / 60
    segkit("eval", project, *overrides)
    segkit("infer", project, *overrides)
    print(f"\ntraining wall time: {minutes:.1f} min (segkit train, {project}; region {args.region} + {args.margin} px)")


def report(args: argparse.Namespace, regions: list[str]) -> None:
    run = args.work / "run"
    with (run / "evaluation.csv").open() as handle:
        evaluation = {row["metric"]: float(row["value"]) for row in csv.DictReader(handle)}
    split = json.loads((args.work / f"prepared-{args.region}" / "split.json").read_text(encoding="utf-8"))
    tested = ", ".join(group for group, name in sorted(split["groups"].items()) if name == "test")
    print(f"test cores (split seed {split['seed']}): {tested}")
    print(f"segkit eval (ignore-aware, test cores): mean_foreground_dice {evaluation['mean_foreground_dice']:.4f}, "
          f"dice_malignant {evaluation['dice_malignant']:.4f}, dice_coef_multiclass {evaluation['dice_coef_multiclass']:.4f}")
    error_picture(args.work / "prepared-bbox", run / "infer", args.work / "errors.png")
    print(f"picture of the first test image's errors: {args.work / 'errors.png'}")
    for region in regions:
        report_region(region, args.margin, *score(args.work / f"prepared-{region}", run / "infer"))


def report_region(region: str, margin: int, scores: dict[str, float], losses: dict[str, np.ndarray]) -> None:
    print(f"in-region ({region} + {margin} px) nucleus Dice on the test cores: segkit {scores['segkit']:.4f}  "
          f"(class-aware {scores['segkit_class_aware']:.4f})  Otsu/hematoxylin {scores['otsu']:.4f}  "
          f"difference {scores['segkit'] - scores['otsu']:+.4f};  Otsu with its threshold fitted inside "
          f"the annotated region {scores['otsu_in_region']:.4f} (difference "
          f"{scores['segkit'] - scores['otsu_in_region']:+.4f})")
    print(f"  the same, counting only predicted blobs that touch an outlined nucleus: segkit "
          f"{scores['segkit_outlined']:.4f}  Otsu {scores['otsu_outlined']:.4f}  Otsu fitted in region "
          f"{scores['otsu_in_region_outlined']:.4f}")
    for name, (missed, border, beyond, unlabelled, total) in losses.items():
        print(f"  1 - Dice of {name} = {(missed + border + beyond + unlabelled) / total:.4f}: outlined nuclei "
              f"missed {missed / total:.4f}, missed at the borders of found ones {border / total:.4f}; found "
              f"beyond an outline {beyond / total:.4f}, in blobs touching none {unlabelled / total:.4f}")
    print(f"  the experts' mask against itself shrunk by one pixel {scores['outline_in']:.4f}, "
          f"grown by one pixel {scores['outline_out']:.4f}")


def require_finished_run(work: Path, regions: list[str]) -> None:
    """One line and exit code 2 when ``work`` lacks what ``--score-only`` rescores."""
    for path in [work / "run" / "evaluation.csv", *(work / f"prepared-{region}" / "split.json" for region in regions)]:
        if not path.is_file():
            print(f"--score-only: {path} is missing: run without --score-only on --work {work} first "
                  f"(with this --region), or give the --work of a finished run", file=sys.stderr)
            sys.exit(2)


def main() -> None:
    args = parse_args()
    regions = list(dict.fromkeys([args.region, "bbox"]))  # training region first; bbox for comparison
    if args.score_only:
        require_finished_run(args.work, regions)
    else:
        prepare_and_train(args, regions)
    report(args, regions)


if __name__ == "__main__":
    main()
