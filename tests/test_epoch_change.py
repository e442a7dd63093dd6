"""The epoch-change inferencer finds the ground truth of its images by stem, or says which is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from segkit_training.epoch_change import EpochChangeInferencer
from tiny_data import COLOURS, write_split

from segkit.classes import ClassInfo, ClassTable
from segkit.errors import DataError

CLASSES = ClassTable(tuple(ClassInfo(name, COLOURS[i]) for i, name in enumerate(("background", "benign", "malignant"))))


def _inferencer(images: Path, output: Path, masks: Path | None = None) -> EpochChangeInferencer:
    return EpochChangeInferencer(images, 2, CLASSES, 64, 64, 3, output, masks=masks)


def test_ground_truth_comes_from_the_masks_folder_beside_the_images(tmp_path: Path) -> None:
    split = write_split(tmp_path / "test", 3, 0)
    callback = _inferencer(split / "images", tmp_path / "out")
    callback.on_train_begin()
    expected = np.asarray(Image.open(split / "masks" / "img_01.png").convert("RGB"))
    assert len(callback._truth) == 2
    assert np.array_equal(CLASSES.colorize(callback._truth[1]), expected)


def test_no_masks_folder_beside_the_images_leaves_the_ground_truth_out(tmp_path: Path) -> None:
    split = write_split(tmp_path / "test", 2, 0)
    (split / "masks").rename(tmp_path / "elsewhere")
    callback = _inferencer(split / "images", tmp_path / "out")
    callback.on_train_begin()
    assert callback._truth == []
    named = _inferencer(split / "images", tmp_path / "out", masks=tmp_path / "elsewhere")
    named.on_train_begin()
    assert len(named._truth) == 2


def test_a_named_masks_folder_without_an_images_mask_is_one_error(tmp_path: Path) -> None:
    split = write_split(tmp_path / "test", 2, 0)
    (split / "masks" / "img_00.png").unlink()
    callback = _inferencer(split / "images", tmp_path / "out", masks=split / "masks")
    with pytest.raises(DataError, match=r"masks: no mask for img_00\.png \(masks pair with images by file stem"):
        callback.on_train_begin()
