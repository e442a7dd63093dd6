"""Small pipeline fixtures shared by the pipeline and stain-augmentation tests: PNG pairs of random
labels, a folder dataset over them, pipeline settings, and the batches of whole epochs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image

from segkit.classes import ClassInfo, ClassTable
from segkit.data.folders import FolderDataset, SplitFolders
from segkit.data.pipeline import PipelineSettings, make_training_dataset

COLOURS = np.array([(0, 0, 0), (0, 255, 0), (255, 0, 0)], np.uint8)
TABLE = ClassTable((ClassInfo("background", (0, 0, 0)), ClassInfo("benign", (0, 255, 0)),
                    ClassInfo("malignant", (255, 0, 0))))
WHITE = (255, 255, 255)


def write_pairs(folder: Path, images: list[np.ndarray], labels: list[np.ndarray], *, index_masks: bool = False,
                ignore: list[np.ndarray] | None = None) -> None:
    """PNG pairs ``img_NN``; masks as RGB class colours (white where ``ignore``) or as uint8 indices."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    for n, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(folder / "images" / f"img_{n:02d}.png")
        if index_masks:
            mask = Image.fromarray(label.astype(np.uint8), mode="L")
        else:
            rgb = COLOURS[label]
            if ignore is not None:
                rgb[ignore[n]] = WHITE
            mask = Image.fromarray(rgb)
        mask.save(folder / "masks" / f"img_{n:02d}.png")


def source_for(folder: Path, table: ClassTable = TABLE) -> FolderDataset:
    return FolderDataset({"train": SplitFolders(folder / "images", folder / "masks")}, table, 3)


def random_pairs(count: int, height: int, width: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]
    labels = [rng.integers(0, 3, (height, width)).astype(np.uint8) for _ in range(count)]
    return images, labels


def settings(**changes: object) -> PipelineSettings:
    base = PipelineSettings(height=16, width=16, channels=3, num_classes=3, batch_size=3, seed=5)
    return dataclasses.replace(base, **changes)


def batches(dataset: object) -> list[tuple[np.ndarray, ...]]:
    return [tuple(np.asarray(t) for t in batch) for batch in dataset]  # type: ignore[attr-defined]


def epochs_of(source: FolderDataset, how: PipelineSettings, first: int, last: int) -> list[list[tuple[np.ndarray, ...]]]:
    """The batches of epochs ``first..last-1`` of ``make_training_dataset``, grouped by epoch."""
    pairs = source.pairs("train")
    dataset, steps = make_training_dataset(source, pairs, how, first, last)
    flat = batches(dataset)
    assert len(flat) == steps * (last - first)
    return [flat[i : i + steps] for i in range(0, len(flat), steps)]


def assert_same(a: list[tuple[np.ndarray, ...]], b: list[tuple[np.ndarray, ...]]) -> None:
    assert len(a) == len(b)
    for batch_a, batch_b in zip(a, b):
        assert len(batch_a) == len(batch_b)
        for x, y in zip(batch_a, batch_b):
            np.testing.assert_array_equal(x, y)
