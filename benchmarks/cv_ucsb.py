"""UCSB breast-cancer-cell: grouped cross-validation by tissue core, and the fold ensemble on cores no fold saw.

    python benchmarks/cv_ucsb.py [--data ../shared/data/ucsb-bcc-sample] [--work /tmp/segkit-cv-ucsb]
                                 [--folds 3] [--test-cores 2] [--epochs 10] [--seed 0] [--smoke]

The honest design. ``segkit train --folds K`` pools every image it is given and deals the tissue cores
into K folds; each fold's model is scored on its held-out cores (the cross-validation estimate,
mean ± sd over folds). But the ensemble of all K fold models has SEEN every core of the pool: each
core was held out by one fold only, and the other K-1 models trained on it. Scoring the ensemble on
the pool would compare it, unfairly, against single models on their own held-out cores. So:

1. ``segkit prepare ucsb-bcc`` (the project's region, the labelled nuclei + 16 px, ignore outside);
2. ``--test-cores`` cores (a seeded choice) are put aside as an OUTER test set; the cross-validation
   pool is the other cores only (``[cv] group_by = "regex"`` on the core name);
3. ``segkit train projects/ucsb-bcc.toml --folds K`` on the pool (each fold validates on training cores
   of its own, never on its held-out ones: s3-folds' fold plan);
4. each fold model ``segkit infer`` on its held-out images (CV estimate) and on the outer cores;
   ``segkit infer --folds`` (the ensemble) on the outer cores, each timed;
5. in-region foreground Dice (bench_ucsb's: global over a set's images, nucleus vs not, only where
   the mask is not the ignore colour) of each; the ensemble against the mean single model and the
   best single model on the outer cores, per core and over them.

Fewer epochs than the project (``--epochs``, default 10 instead of 30) so that the whole script fits
in about 30 minutes on 2 shared CPU cores; the figures are for that budget, not the project's best.
``--smoke`` runs the same steps on a synthetic download (6 cores x 2 images of 64x64 px, a 2-level
network, 1 epoch) in well under a minute: what tests/test_cv_ensemble.py runs.

Writes ``<work>/results.json`` and prints the table docs/cross-validation-benchmarks.md holds.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ucsb import IGNORE, dice  # noqa: E402 - the benchmarks folder is no package

CORE = re.compile(r"^(ytma\d+_\d+)")
#: the training budget of the real run (see the docstring) and of --smoke
FAST = ["callbacks.0.count=1"]  # the epoch-change pictures predict whole 896x768 images every epoch
SMOKE = ["model.image_width=32", "model.image_height=32", "model.base_filters=4", "model.num_layers=2",
         "augment.crops_per_image=2", "train.batch_size=4", "train.epochs=1", "infer.tta=false",
         "callbacks.0.count=1"]


def segkit(*args: str) -> float:
    """``segkit ARGS`` in this process (TensorFlow imported once for every step); its wall seconds."""
    from segkit.cli.main import app

    started = time.perf_counter()
    try:
        app(list(args), prog_name="segkit")
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise SystemExit(f"segkit {' '.join(args[:2])} failed with exit status {exit_.code}") from None
    return time.perf_counter() - started


def synthetic_download(folder: Path, cores: int = 6, per_core: int = 2, size: int = 64) -> Path:
    """A download in UCSB's layout: dark discs on pink, 0/255 masks, one stain shade per core."""
    (folder / "Images").mkdir(parents=True, exist_ok=True)
    (folder / "Masks").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    for core in range(cores):
        shade = rng.uniform(-20, 20, 3)
        for n in range(1, per_core + 1):
            nuclei = np.zeros((size, size), bool)
            for _ in range(5):
                cy, cx = rng.integers(6, size - 6, 2)
                nuclei |= (yy - cy) ** 2 + (xx - cx) ** 2 <= int(rng.integers(3, 6)) ** 2
            image = np.where(nuclei[..., None], (70, 30, 120), (225, 170, 200)) + shade + rng.normal(0, 8, (size, size, 3))
            stem = f"ytma{10 + core}_0{core}0804_malignant{n}"
            Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(folder / "Images" / f"{stem}_ccd.tif")
            Image.fromarray((nuclei * 255).astype(np.uint8)).save(folder / "Masks" / f"{stem}.TIF")
    return folder


def core_of(stem: str) -> str:
    match = CORE.match(stem)
    if match is None:
        raise SystemExit(f"{stem}: not a UCSB name (<core>_<class><n>)")
    return match.group(1)


def split_cores(prepared: Path, work: Path, test_cores: int, seed: int) -> tuple[list[str], list[str]]:
    """Copy the prepared pairs into the cross-validation pool (``work/pool/<split>``, the cores dealt over
    the three splits, which the CV pools again) and the outer test set (``work/outer``); the cores of each."""
    masks = sorted(prepared.glob("*/masks/*.png"))
    cores = sorted({core_of(path.stem) for path in masks})
    if len(cores) < test_cores + 3:
        raise SystemExit(f"{len(cores)} cores: too few for {test_cores} outer test cores and a 3-core pool")
    order = [cores[i] for i in np.random.default_rng(seed).permutation(len(cores))]
    outer, pool = sorted(order[:test_cores]), sorted(order[test_cores:])
    for where in ("pool", "outer"):
        shutil.rmtree(work / where, ignore_errors=True)
    for mask in masks:
        core = core_of(mask.stem)
        image = mask.parent.parent / "images" / mask.name
        split = "outer" if core in outer else f"pool/{('train', 'valid', 'test')[pool.index(core) % 3]}"
        for kind, path in (("images", image), ("masks", mask)):
            (work / split / kind).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, work / split / kind / path.name)
    return pool, outer


def project_overrides(work: Path, smoke: bool, epochs: int | None) -> list[str]:
    values = [f"project.output_dir={work / 'run'}", "cv.group_by=regex", f"cv.group_regex={CORE.pattern}",
              f"callbacks.0.images={work / 'outer' / 'images'}", f"infer.images={work / 'outer' / 'images'}"]
    for split in ("train", "valid", "test"):
        values += [f"dataset.{split}.images={work}/pool/{split}/images",
                   f"dataset.{split}.masks={work}/pool/{split}/masks"]
    values += SMOKE if smoke else FAST
    if epochs is not None:
        values.append(f"train.epochs={epochs}")
    return [part for value in values for part in ("--set", value)]


def in_region_dice(pairs: list[tuple[Path, Path]]) -> float:
    """Global foreground Dice of ``(mask, predicted mask)`` pairs, summed over them, inside the region."""
    overlap = total = 0
    for mask_path, predicted_path in pairs:
        mask = np.asarray(Image.open(mask_path).convert("RGB"))
        predicted = np.asarray(Image.open(predicted_path).convert("RGB"))
        region = ~np.all(mask == IGNORE, axis=2)
        parts = dice(np.any(mask != 0, axis=2) & region, np.any(predicted != 0, axis=2) & region)
        overlap, total = overlap + parts[0], total + parts[1]
    return overlap / total if total else float("nan")


def pool_mask(work: Path, stem: str) -> Path:
    found = sorted((work / "pool").glob(f"*/masks/{stem}.png"))
    if len(found) != 1:
        raise SystemExit(f"{stem}: {len(found)} masks in the pool, expected 1")
    return found[0]


def image_of(mask: Path) -> Path:
    return mask.parent.parent / "images" / mask.name


def score_folds(project: str, overrides: list[str], work: Path, plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Each fold's model on its held-out images (the CV estimate) and, timed, on the outer cores."""
    from segkit.cv.layout import fold_folder

    rows = []
    for k, fold in enumerate(plan["folds"]):
        held = [pool_mask(work, stem) for stem in fold["test"]]
        own = ["--set", f"project.output_dir={fold_folder(work / 'run', k)}"]
        segkit("infer", project, *map(str, map(image_of, held)), "--quiet", "--out", str(work / f"pred/fold_{k}/held"),
               *overrides, *own)
        seconds = segkit("infer", project, "--quiet", "--out", str(work / f"pred/fold_{k}/outer"), *overrides, *own)
        rows.append({"fold": k, "held_out_cores": sorted({core_of(stem) for stem in fold["test"]}),
                     "held_out_images": len(held), "train_images": len(fold["train"]),
                     "valid_images": len(fold["valid"]),
                     "held_out_dice": in_region_dice([(m, work / f"pred/fold_{k}/held" / m.name) for m in held]),
                     "outer_seconds": seconds})
    return rows


def outer_scores(work: Path, folds: int, outer: list[str]) -> list[dict[str, Any]]:
    """Per outer core and over all of them: each fold model's Dice, their mean and best, the ensemble's."""
    masks = sorted((work / "outer" / "masks").glob("*.png"))
    rows = []
    for name, chosen in [*((core, [m for m in masks if core_of(m.stem) == core]) for core in outer), ("all", masks)]:
        singles = [in_region_dice([(m, work / f"pred/fold_{k}/outer" / m.name) for m in chosen]) for k in range(folds)]
        ensemble = in_region_dice([(m, work / "pred/ensemble" / m.name) for m in chosen])
        rows.append({"cores": name, "images": len(chosen), "single": singles, "single_mean": statistics.fmean(singles),
                     "single_best": max(singles), "ensemble": ensemble,
                     "ensemble_minus_mean": ensemble - statistics.fmean(singles)})
    return rows


def cross_validate(args: argparse.Namespace) -> dict[str, Any]:
    work: Path = args.work
    data = synthetic_download(work / "download") if args.smoke else args.data
    segkit("prepare", "ucsb-bcc", str(data), "--out", str(work / "prepared"), "--option", "ignore_margin=16",
           "--option", "ignore_region=nuclei", "--option", "overwrite=true")
    pool, outer = split_cores(work / "prepared", work, args.test_cores, args.seed)
    project = str(ROOT / "projects" / "ucsb-bcc.toml")
    overrides = project_overrides(work, args.smoke, args.epochs)
    train_seconds = segkit("train", project, "--quiet", "--overwrite", "--folds", str(args.folds), *overrides)
    plan = json.loads((work / "run" / "folds.json").read_text(encoding="utf-8"))
    folds = score_folds(project, overrides, work, plan)
    ensemble_seconds = segkit("infer", project, "--quiet", "--folds", "--out", str(work / "pred/ensemble"), *overrides)
    held = [row["held_out_dice"] for row in folds]
    return {"pool_cores": pool, "outer_cores": outer, "folds": folds, "plan": plan["folds"],
            "cv_dice_mean": statistics.fmean(held), "cv_dice_sd": statistics.stdev(held) if len(held) > 1 else 0.0,
            "outer": outer_scores(work, len(folds), outer), "train_seconds": train_seconds,
            "single_infer_seconds": statistics.fmean(row["outer_seconds"] for row in folds),
            "ensemble_infer_seconds": ensemble_seconds, "settings": overrides[1::2]}


def table(results: dict[str, Any]) -> str:
    folds = results["folds"]
    lines = [f"pool cores: {', '.join(results['pool_cores'])}; outer test cores: {', '.join(results['outer_cores'])}",
             f"training {len(folds)} folds: {results['train_seconds'] / 60:.1f} min", "",
             "| fold | held-out cores | train / valid / held-out images | held-out in-region Dice |", "|---|---|---|---|"]
    lines += [f"| {r['fold']} | {', '.join(r['held_out_cores'])} | {r['train_images']} / {r['valid_images']} / "
              f"{r['held_out_images']} | {r['held_out_dice']:.4f} |" for r in folds]
    lines += [f"| mean ± sd | | | **{results['cv_dice_mean']:.4f} ± {results['cv_dice_sd']:.4f}** |", "",
              "| outer cores | images | single models | mean single | best single | ensemble | ensemble − mean |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['cores']} | {r['images']} | {' '.join(f'{v:.4f}' for v in r['single'])} | {r['single_mean']:.4f} "
              f"| {r['single_best']:.4f} | {r['ensemble']:.4f} | {r['ensemble_minus_mean']:+.4f} |"
              for r in results["outer"]]
    single, ensemble = results["single_infer_seconds"], results["ensemble_infer_seconds"]
    lines += ["", f"segkit infer on the outer images (model loading included): one fold model {single:.1f} s, "
              f"the ensemble of {len(folds)} {ensemble:.1f} s ({ensemble / single:.2f}x)"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ucsb-bcc-sample")
    parser.add_argument("--work", type=Path, default=Path("/tmp/segkit-cv-ucsb"))
    parser.add_argument("--folds", type=int, default=3, help="K of the grouped cross-validation of the pool")
    parser.add_argument("--test-cores", type=int, default=2, help="cores kept out of the pool, for the ensemble")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 10; --smoke: 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the choice of the outer test cores")
    parser.add_argument("--smoke", action="store_true", help="a synthetic download and a tiny network")
    args = parser.parse_args(argv)
    if args.epochs is None and not args.smoke:
        args.epochs = 10
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    results = cross_validate(args)
    (args.work / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    print(f"\nresults: {args.work / 'results.json'}")


if __name__ == "__main__":
    main()
