"""``segkit prepare ucsb-bcc``: the UCSB download -> segkit's split folders, split.json and a project.

Masks become RGB categorized PNGs: nucleus pixels (> 127) in the colour of the image's class,
the rest background. UCSB masks are partial (nuclei outlined in one region only), so with
``ignore_margin >= 0`` everything outside that region is painted the ignore colour and counts in
no loss or metric, instead of teaching the model that unlabelled nuclei are background.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segkit.plugin import (
    DataError,
    Option,
    PrepareReport,
    PreparerRequest,
    prepared_files,
    read_image,
    staged_output,
    toml_dumps,
    write_atomic,
    write_png,
)
from segkit_ucsb.ucsb_layout import UcsbPair, check_pairs, core_labels, discover

SPLITS = ("train", "valid", "test")
PROJECT_FILE, SPLIT_FILE = "ucsb-bcc.toml", "split.json"
#: Everything a preparation writes into the output folder (beside the manifest), all replaced together.
OUTPUT_ENTRIES = (*SPLITS, SPLIT_FILE, PROJECT_FILE)
WRITTEN_BY = "segkit prepare ucsb-bcc"
CLASS_COLORS = {0: (0, 0, 0), 1: (0, 255, 0), 2: (255, 0, 0)}
CLASS_NAMES = ("background", "benign", "malignant")

UCSB_OPTIONS = (
    Option("valid_ratio", "float", 0.15, "share of tissue cores for validation", minimum=0, maximum=0.9),
    Option("test_ratio", "float", 0.2, "share of tissue cores for test", minimum=0, maximum=0.9),
    Option("seed", "int", 0, "seed of the core split (same seed, same split); also the project's seed",
           minimum=0, maximum=2**32 - 1),  # the range of [project] seed, which the written project takes
    Option("ignore_margin", "int", -1, "grow the annotated region by this many pixels and paint the "
           "mask outside it with ignore_color; -1 = off (unlabelled nuclei count as background)", minimum=-1,
           maximum=4096),
    Option("ignore_color", "color", [255, 255, 255], "mask colour outside the annotated region"),
    Option("ignore_region", "str", "bbox", "shape of the annotated region: bounding box of the "
           "labelled nuclei, their convex hull (~18% smaller on UCSB), or the nuclei themselves grown by "
           "the margin (leaves out unlabelled nuclei inside the box)", choices=("bbox", "hull", "nuclei")),
    Option("overwrite", "bool", False, "write into a non-empty output folder, replacing earlier output"),
)


@dataclass(frozen=True)
class Settings:
    valid_ratio: float
    test_ratio: float
    seed: int
    ignore_margin: int
    ignore_color: tuple[int, int, int]
    ignore_region: str
    overwrite: bool

    @property
    def ignoring(self) -> bool:
        return self.ignore_margin >= 0


def settings_from(options: Mapping[str, Any]) -> Settings:
    """Options (as validated by the CLI, or partial in direct calls) with defaults filled in."""
    known = {o.name: o.default for o in UCSB_OPTIONS}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise DataError(f"ucsb-bcc: unknown option(s) {unknown}; the options are {sorted(known)}")
    merged = {**known, **options}
    settings = Settings(**{**merged, "ignore_color": tuple(int(c) for c in merged["ignore_color"])})
    if settings.valid_ratio + settings.test_ratio >= 1 or min(settings.valid_ratio, settings.test_ratio) < 0:
        raise DataError(f"ucsb-bcc: valid_ratio {settings.valid_ratio} + test_ratio {settings.test_ratio} "
                        "must be >= 0 each and below 1 together; lower them so training keeps some cores")
    if settings.ignoring and settings.ignore_color in CLASS_COLORS.values():
        raise DataError(f"ucsb-bcc: ignore_color {list(settings.ignore_color)} is a class colour; pick another, "
                        "e.g. [255, 255, 255]")
    return settings


def split_sizes(n: int, valid_ratio: float, test_ratio: float) -> dict[str, int]:
    """Cores per split: rounded shares, >= 1 for a wanted held-out split once there are 3 cores."""
    sizes = {"valid": math.floor(n * valid_ratio + 0.5), "test": math.floor(n * test_ratio + 0.5)}
    if n >= 3:
        for name, ratio in (("valid", valid_ratio), ("test", test_ratio)):
            sizes[name] = max(sizes[name], 1 if ratio > 0 else 0)
    # Training needs a core more than any held-out split: give back from the larger one.
    while sizes["valid"] + sizes["test"] > max(n - 1, 0):
        sizes["test" if sizes["test"] >= sizes["valid"] else "valid"] -= 1
    return {"train": n - sizes["valid"] - sizes["test"], **sizes}


def _interleaved(labels: Mapping[str, str], rng: np.random.Generator) -> list[str]:
    """Cores in a shuffled order where every stratum is spread evenly (systematic sampling).

    Core ``r`` of a stratum of ``k`` sits at ``(r + u) / k``, so any prefix of the order holds
    each stratum in proportion: the test and valid slices taken from the front get both classes.
    """
    keyed: list[tuple[float, str, str]] = []
    for stratum in sorted(set(labels.values())):
        cores = sorted(c for c, s in labels.items() if s == stratum)
        order, offset = rng.permutation(len(cores)), float(rng.random())
        keyed += [((rank + offset) / len(cores), stratum, cores[i]) for rank, i in enumerate(order)]
    return [core for _, _, core in sorted(keyed)]


def split_cores(labels: Mapping[str, str], valid_ratio: float, test_ratio: float, seed: int) -> dict[str, str]:
    """Core -> split name, deterministic for ``seed``, stratified by the cores' class."""
    sizes = split_sizes(len(labels), valid_ratio, test_ratio)
    order = _interleaved(labels, np.random.default_rng(seed))
    bounds = {"test": (0, sizes["test"]), "valid": (sizes["test"], sizes["test"] + sizes["valid"]),
              "train": (sizes["test"] + sizes["valid"], len(order))}
    return {core: split for split, (lo, hi) in bounds.items() for core in order[lo:hi]}


def bbox_region(nuclei: np.ndarray, margin: int) -> np.ndarray:
    """Bounding box of the labelled pixels grown by ``margin`` and clipped to the image."""
    region = np.zeros(nuclei.shape, dtype=bool)
    rows, cols = np.flatnonzero(nuclei.any(axis=1)), np.flatnonzero(nuclei.any(axis=0))
    if rows.size:
        region[max(rows[0] - margin, 0): rows[-1] + margin + 1, max(cols[0] - margin, 0): cols[-1] + margin + 1] = True
    return region


def _convex_hull(points: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Andrew's monotone chain; counter-clockwise in (x, y), collinear points dropped."""
    unique = sorted(set(points))
    if len(unique) < 3:
        return unique

    def half(seq: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        chain: list[tuple[int, int]] = []
        for p in seq:
            while len(chain) >= 2 and _cross(chain[-2], chain[-1], p) <= 0:
                chain.pop()
            chain.append(p)
        return chain[:-1]

    return half(unique) + half(unique[::-1])


def _cross(o: tuple[int, int], a: tuple[int, int], b: tuple[int, int]) -> int:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def hull_region(nuclei: np.ndarray, margin: int) -> np.ndarray:
    """Convex hull of the labelled pixels grown by ``margin`` in x and y, clipped to the image."""
    region = bbox_region(nuclei, margin)
    rows = np.flatnonzero(nuclei.any(axis=1))
    if rows.size == 0:
        return region
    # A row's leftmost and rightmost pixels span the same hull as all of its pixels.
    first = nuclei[rows].argmax(axis=1)
    last = nuclei.shape[1] - 1 - nuclei[rows, ::-1].argmax(axis=1)
    points = [(int(x), int(y)) for x, y in zip(np.concatenate([first, last]), np.concatenate([rows, rows]))]
    # Growing a convex polygon by a square = the hull of its corners moved to the square's corners.
    corners = [(x + dx, y + dy) for x, y in _convex_hull(points) for dx in (-margin, margin) for dy in (-margin, margin)]
    hull = _convex_hull(corners)
    ys, xs = np.nonzero(region)
    inside = np.ones(ys.shape, dtype=bool)
    # Exact integer half-plane tests; a 2-point hull is a segment, which the box then cuts to length.
    for (ax, ay), (bx, by) in zip(hull, hull[1:] + hull[:1]):
        inside &= (bx - ax) * (ys - ay) - (by - ay) * (xs - ax) >= 0
    region[ys[~inside], xs[~inside]] = False
    return region


def nuclei_region(nuclei: np.ndarray, margin: int) -> np.ndarray:
    """The labelled pixels grown by ``margin`` (an octagon, close to a disc): the background an
    expert looked at while outlining each nucleus. UCSB experts did not outline every nucleus in
    their box, so far from any outline "background" may be an unlabelled nucleus."""
    region = nuclei.copy()
    for step in range(margin):
        grown = region.copy()
        grown[1:] |= region[:-1]
        grown[:-1] |= region[1:]
        grown[:, 1:] |= region[:, :-1]
        grown[:, :-1] |= region[:, 1:]
        if step % 2:  # alternate 4- and 8-neighbour steps: an octagon rather than a diamond
            grown[1:, 1:] |= region[:-1, :-1]
            grown[1:, :-1] |= region[:-1, 1:]
            grown[:-1, 1:] |= region[1:, :-1]
            grown[:-1, :-1] |= region[1:, 1:]
        region = grown
    return region


def annotated_region(nuclei: np.ndarray, settings: Settings) -> np.ndarray:
    """Where experts labelled nuclei: the ``ignore_region`` shape grown by the margin (0 when off)."""
    margin = max(settings.ignore_margin, 0)
    shapes = {"hull": hull_region, "nuclei": nuclei_region}
    return shapes.get(settings.ignore_region, bbox_region)(nuclei, margin)


def categorize(nuclei: np.ndarray, class_index: int, region: np.ndarray | None,
               ignore_color: tuple[int, int, int]) -> np.ndarray:
    """RGB categorized mask: class colour on nuclei, background elsewhere, ignore outside ``region``."""
    mask = np.zeros((*nuclei.shape, 3), dtype=np.uint8)
    mask[nuclei] = CLASS_COLORS[class_index]
    if region is not None:
        mask[~region] = ignore_color
    return mask


def _write_pair(pair: UcsbPair, folder: Path, settings: Settings) -> float | None:
    """Write the image and its categorized mask; returns the annotated share (None: no label)."""
    image = read_image(pair.image, 3)
    nuclei = read_image(pair.mask, 1)[:, :, 0] > 127
    region = annotated_region(nuclei, settings)
    mask = categorize(nuclei, pair.class_index, region if settings.ignoring else None, settings.ignore_color)
    write_png(folder / "images" / f"{pair.stem}.png", image)
    write_png(folder / "masks" / f"{pair.stem}.png", mask)
    return float(region.mean()) if nuclei.any() else None


def _split_record(pairs: Sequence[UcsbPair], groups: Mapping[str, str], settings: Settings) -> dict[str, Any]:
    ratios = {"train": round(1 - settings.valid_ratio - settings.test_ratio, 6),
              "valid": settings.valid_ratio, "test": settings.test_ratio}
    splits = {s: sorted(p.stem for p in pairs if groups[p.core] == s) for s in SPLITS}
    return {"seed": settings.seed, "ratios": ratios, "splits": splits, "groups": dict(sorted(groups.items()))}


def project_document(counts: Mapping[str, int], settings: Settings) -> dict[str, Any]:
    """The segkit project for the prepared folder; paths are relative to it, so it can be moved."""
    document: dict[str, Any] = {
        "project": {"name": "ucsb-bcc", "seed": settings.seed},
        # full resolution, the settings of projects/ucsb-bcc.toml (benchmarks/bench_ucsb.py): the
        # model learns from 128x128 windows drawn around labels, infer/eval slide over whole images
        "model": {"name": "flexunet", "image_width": 128, "image_height": 128, "image_channels": 3,
                  "base_filters": 16, "base_kernels": 5, "num_layers": 5, "dropout_rate": 0.02,
                  "normalization": True},
        "classes": [{"name": n, "color": list(CLASS_COLORS[i])} for i, n in enumerate(CLASS_NAMES)],
        "mask": {"ignore_color": list(settings.ignore_color)} if settings.ignoring else None,
        "optimizer": {"name": "adam", "learning_rate": 0.002, "ema_momentum": 0.99},
        "loss": {"name": "dice_crossentropy"},
        "metrics": {"names": ["dice_coef_multiclass"]},
        "dataset": {"name": "categorized-masks",
                    **{s: {"images": f"{s}/images", "masks": f"{s}/masks"} for s in SPLITS if counts[s]}},
        "augment": {"enabled": True, "crop": True, "crops_per_image": 32, "flips": True, "rotate90": True,
                    "stain_jitter": 0.15},
        "train": {"epochs": 30, "batch_size": 16, "patience": 15, "cache": "memory",
                  "reducer": {"factor": 0.5, "patience": 6}},
        # The test images show training progress and are what `segkit infer` segments.
        "callbacks": [{"name": "epoch-change-inferencer", "images": "test/images",
                       "count": min(6, counts["test"])}] if counts["test"] else None,
        "infer": {"images": "test/images", "tta": True} if counts["test"] else None,
    }
    return {k: v for k, v in document.items() if v is not None}


def _project_text(source: Path, counts: Mapping[str, int], settings: Settings) -> str:
    ignore = (f"ignore_margin={settings.ignore_margin}, ignore_region={settings.ignore_region}"
              if settings.ignoring else "ignore region off: unlabelled nuclei count as background")
    header = [
        "# UCSB breast-cancer-cell data prepared by `segkit prepare ucsb-bcc`.",
        f"# source: {source.resolve()}",
        f"# split by tissue core, seed {settings.seed}: "
        + ", ".join(f"{s} {counts[s]} images" for s in SPLITS) + f" (see {SPLIT_FILE})",
        f"# masks: {ignore}",
        "# Paths are relative to this file. Train with: segkit train " + PROJECT_FILE,
        "", "",
    ]
    return "\n".join(header) + toml_dumps(project_document(counts, settings))


def _notes(orphans: Sequence[Path], groups: Mapping[str, str], shares: Mapping[str, float | None],
           settings: Settings) -> list[str]:
    notes = [f"{s}: cores " + ", ".join(sorted(c for c, g in groups.items() if g == s)) for s in SPLITS]
    notes += [f"{s} split is empty (too few cores to hold out); the project leaves it out"
              for s in SPLITS if s not in set(groups.values())]
    fractions = [f for f in shares.values() if f is not None]
    empty = [stem for stem, f in shares.items() if f is None]
    if fractions:
        what = f"{settings.ignore_region} + {max(settings.ignore_margin, 0)} px"
        notes.append(f"annotated region ({what}): {min(fractions):.1%}-{max(fractions):.1%} of an image, "
                     f"median {float(np.median(fractions)):.1%}")
    if not settings.ignoring:
        notes.append("masks are partial: nuclei outside the annotated region are written as background; "
                     "--option ignore_margin=16 excludes them from loss and metrics")
    notes += [f"{stem}: no labelled pixel; its mask is all " + ("ignore" if settings.ignoring else "background")
              for stem in empty]
    notes += [f"{p}: mask without an image, skipped" for p in orphans]
    return notes


def prepare_ucsb(request: PreparerRequest) -> PrepareReport:
    """Convert ``request.source`` (the UCSB download) into ``request.output``."""
    settings = settings_from(request.options)
    layout = discover(request.source)
    check_pairs(layout.pairs)
    groups = split_cores(core_labels(layout.pairs), settings.valid_ratio, settings.test_ratio, settings.seed)
    output = request.output
    earlier = prepared_files(output) if settings.overwrite and output.is_dir() else set()
    record = _split_record(layout.pairs, groups, settings)
    counts = {s: len(record["splits"][s]) for s in SPLITS}
    # Written into a staging folder and swapped in at the end: a file that fails to decode leaves
    # the output as it was, and overwrite replaces only what an earlier preparation wrote.
    with staged_output(output, OUTPUT_ENTRIES, overwrite=settings.overwrite, written_by=WRITTEN_BY) as staging:
        # PNG encoding is most of the time and Pillow releases the GIL for it: threads scale.
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            written = pool.map(lambda pair: _write_pair(pair, staging / groups[pair.core], settings), layout.pairs)
            shares = dict(zip((pair.stem for pair in layout.pairs), written))
        write_atomic(staging / SPLIT_FILE, json.dumps(record, indent=2) + "\n")
        write_atomic(staging / PROJECT_FILE, _project_text(request.source, counts, settings))
    notes = [f"overwrite: replaced the {len(earlier)} file(s) of an earlier preparation"] if earlier else []
    notes += _notes(layout.orphan_masks, groups, shares, settings)
    return PrepareReport(counts=counts, project_file=output / PROJECT_FILE, notes=tuple(notes))
