"""The benchmark data (synthetic H&E pairs) and the segkit project file that trains on it."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH = Path(__file__).resolve().parents[1]
SIDE = 512  # the PNGs on disk
MODEL_SIDE = 256  # the model input
NUM_LAYERS = 6
BASE_FILTERS = 16
NUM_CLASSES = 3
SEED = 1
DEFAULT_DATA = Path(tempfile.gettempdir()) / "segkit-bench-512"

def ensure_pairs(root: Path, count: int, side: int = SIDE) -> Path:
    """``root/train/{images,masks}`` with at least ``count`` synthetic ``side``x``side`` pairs; returns ``root``.

    The folder is re-used while its marker says it holds enough pairs of that size.
    """
    from segkit_synthetic.he_tiles import TileSettings
    from segkit_synthetic.tile_folders import write_split

    root = Path(root)
    marker = root / "pairs.json"
    try:
        held = json.loads(marker.read_text())
        if held["side"] == side and held["count"] >= count:
            return root
    except (OSError, ValueError, KeyError):
        pass
    started = time.perf_counter()
    print(f"generating {count} synthetic {side}x{side} pairs into {root} ...", file=sys.stderr, flush=True)
    marker.unlink(missing_ok=True)
    write_split(root / "train", count=count, first_seed=0, settings=TileSettings(size=side))
    marker.write_text(json.dumps({"side": side, "count": count}))
    print(f"  done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return root


def linked_pairs(root: Path, count: int) -> Path:
    """``<root>-x<count>/train``: ``root``'s generated pairs repeated to ``count`` by hard links, for
    figures that depend on how many pairs a process decodes and holds, not on their pixels (peak
    memory). Returns the new root; re-used when it already holds ``count`` pairs."""
    source = Path(root) / "train"
    originals = sorted((source / "images").glob("*.png"))
    linked = Path(f"{root}-x{count}")
    for part in ("images", "masks"):
        (linked / "train" / part).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            target = linked / "train" / part / f"tile_{index:05d}.png"
            if not target.exists():
                os.link(source / part / originals[index % len(originals)].name, target)
    return linked


def _pairs(data: Path) -> dict[str, str]:
    return {"images": f"{data}/train/images", "masks": f"{data}/train/masks"}


def write_project(folder: Path, data: Path, *, batch_size: int = 4, cache: str = "none", jit: str = "auto",
                  precision: str = "float32", epochs: int = 1, side: int = MODEL_SIDE,
                  infer: Path | None = None) -> Path:
    """A segkit project file training the benchmark FlexUNet on ``data/train``; written by segkit's
    TOML writer, so any path is quoted as TOML needs."""
    from segkit import toml_io

    project = {
        "project": {"name": "bench", "output_dir": folder / "run", "seed": SEED},
        "model": {"name": "flexunet", "image_width": side, "image_height": side, "image_channels": 3,
                  "base_filters": BASE_FILTERS, "num_layers": NUM_LAYERS},
        "classes": [{"name": "background", "color": [0, 0, 0]}, {"name": "benign", "color": [0, 255, 0]},
                    {"name": "malignant", "color": [255, 0, 0]}],
        "optimizer": {"name": "adam", "learning_rate": 1e-4},
        "loss": {"name": "categorical_crossentropy"},
        "metrics": {"names": ["dice_coef_multiclass"]},
        "dataset": {"name": "categorized-masks", "train": _pairs(data), "valid": _pairs(data)},
        "train": {"epochs": epochs, "batch_size": batch_size, "patience": 0, "cache": cache, "jit_compile": jit,
                  "precision": precision, "reducer": {"factor": 0.5, "patience": 0}},
        "infer": {"images": infer or data / "train" / "images"},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench.toml"
    path.write_text(toml_io.dumps(project), encoding="utf-8")
    return path


def load(path: Path, overrides: Sequence[str] = ()) -> tuple[Any, Any]:
    """``(Project, Registry)`` exactly as the CLI gets them."""
    from segkit.plugins import get_registry
    from segkit.project import load_project

    registry = get_registry()
    return load_project(path, list(overrides), registry), registry
