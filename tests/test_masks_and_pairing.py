"""Colour decoding, image modes, and pairing by stem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segkit.classes import IGNORE_INDEX, ClassInfo, ClassTable
from segkit.data.images import read_image, read_mask
from segkit.data.pairing import pair_by_stem
from segkit.errors import DataError

TABLE = ClassTable((ClassInfo("background", (0, 0, 0)), ClassInfo("benign", (0, 255, 0)),
                    ClassInfo("malignant", (255, 0, 0))), tolerance=60)


def test_nearest_colour_with_far_pixels_counted() -> None:
    rgb = np.array([[[0, 0, 0], [10, 240, 5], [250, 20, 20]], [[200, 200, 200], [0, 0, 0], [120, 120, 0]]], np.uint8)
    indices, far = TABLE.decode(rgb)
    # (200,200,200) is equally far from green and red: the first class in table order wins
    assert indices.tolist() == [[0, 1, 2], [1, 0, 0]]
    assert far == 2  # (200,200,200) and (120,120,0) are > 60 from every class colour


def test_ignore_colour_decodes_to_ignore_index() -> None:
    table = ClassTable(TABLE.classes, ignore_color=(255, 255, 255))
    indices, far = table.decode(np.array([[[255, 255, 255], [250, 250, 250], [0, 250, 0]]], np.uint8))
    assert indices.tolist() == [[IGNORE_INDEX, IGNORE_INDEX, 1]] and far == 0
    assert table.colorize(indices).tolist() == [[[255, 255, 255], [255, 255, 255], [0, 255, 0]]]


def test_image_modes_are_converted(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 5), 100, np.uint8), "L").save(tmp_path / "gray.png")
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3] = 255  # one opaque red pixel, the rest transparent -> white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(np.full((4, 5), 4000, np.uint16)).save(tmp_path / "deep.tif")
    assert read_image(tmp_path / "gray.png").tolist()[0][0] == [100, 100, 100]
    rgb = read_image(tmp_path / "rgba.png")
    assert rgb[0, 0].tolist() == [200, 0, 0] and rgb[1, 1].tolist() == [255, 255, 255]
    assert read_image(tmp_path / "deep.tif").shape == (4, 5, 3)
    assert read_image(tmp_path / "gray.png", channels=1).shape == (4, 5, 1)


def test_index_masks_and_binary_masks(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 1, 2]], np.uint8), "L").save(tmp_path / "index.png")
    assert read_mask(tmp_path / "index.png", TABLE)[0].tolist() == [[0, 1, 2]]


def test_corrupt_image_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match=r"bad\.png: cannot be read as an image"):
        read_image(tmp_path / "bad.png")


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(folder / name)


def test_pairs_by_stem_not_order(tmp_path: Path) -> None:
    _touch(tmp_path / "images", "b.png", "a.jpg", "c.tif")
    _touch(tmp_path / "masks", "c.png", "a.png", "b.png")
    pairs = pair_by_stem(tmp_path / "images", tmp_path / "masks")
    assert [(p.stem, p.image.name, p.mask.name) for p in pairs] == [
        ("a", "a.jpg", "a.png"), ("b", "b.png", "b.png"), ("c", "c.tif", "c.png")]


def test_unpaired_files_are_listed(tmp_path: Path) -> None:
    _touch(tmp_path / "images", "a.png", "lonely.png")
    _touch(tmp_path / "masks", "a.png", "orphan.png")
    with pytest.raises(DataError, match=r"images without a mask .*: lonely\.png; masks without an image .*: orphan\.png"):
        pair_by_stem(tmp_path / "images", tmp_path / "masks")


def test_duplicate_stems_are_refused(tmp_path: Path) -> None:
    _touch(tmp_path / "images", "a.png", "a.tif")
    _touch(tmp_path / "masks", "a.png")
    with pytest.raises(DataError, match=r"'a\.png' and 'a\.tif' share the stem 'a'"):
        pair_by_stem(tmp_path / "images", tmp_path / "masks")
