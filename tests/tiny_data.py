"""Tiny generated datasets and the project that trains on them (64x64 pink images with dark discs)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segkit import toml_io

COLOURS = {0: (0, 0, 0), 1: (0, 255, 0), 2: (255, 0, 0)}


def blob_pair(seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A pink image with dark discs (benign: small, malignant: big) and its RGB categorized mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.zeros((size, size, 3), np.float32) + (230, 170, 200)
    labels = np.zeros((size, size), np.uint8)
    for _ in range(4):
        cls = int(rng.integers(1, 3))
        radius = 4 if cls == 1 else 8
        cy, cx = rng.integers(radius, size - radius, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        labels[disc] = cls
        image[disc] = (120, 60, 160) if cls == 1 else (60, 20, 110)
    image += rng.normal(0, 6, image.shape)
    mask = np.array([COLOURS[c] for c in range(3)], np.uint8)[labels]
    return image.clip(0, 255).astype(np.uint8), mask


def write_split(root: Path, count: int, first_seed: int, size: int = 64) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image, mask = blob_pair(first_seed + i, size)
        Image.fromarray(image).save(root / "images" / f"img_{i:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"img_{i:02d}.png")
    return root


#: The first line of every tiny project file; it also keeps ``seed`` on line 5, where the tests of
#: malformed TOML expect the parser to point.
HEADER = "# The tiny test project, written by tests/tiny_data.py\n"


def _split(name: str) -> dict[str, str]:
    return {"images": f"data/{name}/images", "masks": f"data/{name}/masks"}


def tiny_project(epochs: int = 2, ema_momentum: float | None = None, dropout_rate: float = 0.0,
                 **changes: Any) -> dict[str, Any]:
    """The tiny project as the TOML document ``write_tiny_project`` writes; each of ``changes`` replaces
    the top-level table (or array of tables) of its name, or adds it after the others."""
    project: dict[str, Any] = {
        "project": {"name": "tiny", "output_dir": "run", "seed": 7},
        "model": {"name": "flexunet", "image_width": 64, "image_height": 64, "base_filters": 4, "base_kernels": 5,
                  "num_layers": 3, "dropout_rate": dropout_rate},
        "classes": [{"name": "background", "color": [0, 0, 0]}, {"name": "benign", "color": [0, 255, 0]},
                    {"name": "malignant", "color": [255, 0, 0]}],
        "optimizer": {"ema_momentum": ema_momentum, "name": "adam", "learning_rate": 0.01, "clipvalue": 0.5},
        "dataset": {"name": "categorized-masks", "train": _split("train"), "valid": _split("valid"),
                    "test": _split("test")},
        "train": {"epochs": epochs, "batch_size": 4, "patience": 0, "reducer": {"factor": 0.5, "patience": 1}},
        "callbacks": [{"name": "epoch-change-inferencer", "images": "data/test/images", "count": 2}],
        "infer": {"images": "data/infer"},
    }
    return {**project, **changes}


def write_tiny_project(root: Path, epochs: int = 2, ema_momentum: float | None = None,
                       dropout_rate: float = 0.0, **changes: Any) -> Path:
    """A project folder with 8/4/4 generated 64x64 pairs and 3 odd-sized images to infer;
    ``ema_momentum`` sets ``[optimizer] ema_momentum`` (weight averaging), ``dropout_rate``
    FlexUNet's (random layers), ``changes`` whole tables (see ``tiny_project``)."""
    write_split(root / "data" / "train", 8, 0)
    write_split(root / "data" / "valid", 4, 100)
    write_split(root / "data" / "test", 4, 200)
    infer = root / "data" / "infer"
    infer.mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate([(64, 64), (97, 53), (40, 120)]):
        image, _ = blob_pair(300 + i, max(w, h))
        Image.fromarray(image[:h, :w]).save(infer / f"odd_{i}.png")
    project = root / "tiny.toml"
    document = tiny_project(epochs, ema_momentum, dropout_rate, **changes)
    project.write_text(HEADER + toml_io.dumps(document), encoding="utf-8")
    return project


def best_val_loss(run: Path) -> float:
    """The lowest ``val_loss`` a training run into ``run`` wrote to its loss log."""
    with (run / "eval" / "train_losses.csv").open() as handle:
        return min(float(row["val_loss"]) for row in csv.DictReader(handle))


def saved_model_loss_on_valid(project: Path, run: Path) -> float:
    """The loss of ``run``'s saved model evaluated on the tiny project's validation images: what
    training reported as ``val_loss`` for the epoch whose model it kept."""
    from segkit.engine.evaluate import evaluate
    from segkit.plugins import get_registry
    from segkit.project import load_project

    valid = project.parent / "data" / "valid"
    loaded = load_project(project, [f"project.output_dir={run}", f"dataset.test.images={valid / 'images'}",
                                    f"dataset.test.masks={valid / 'masks'}"])
    return evaluate(loaded, get_registry())[loaded.loss.name]


def edit_text(path: Path, old: str, new: str) -> Path:
    """``path`` with the first ``old`` replaced by ``new`` (which must be there)."""
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path

