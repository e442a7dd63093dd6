"""Instance labels in: reading/writing label images, the true objects of a mask, the folder dataset's
instance folders and synthetic-he's exact ids (segkit/objects/labels.py, segkit/data/folders.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from segkit.classes import IGNORE_INDEX
from segkit.errors import DataError
from segkit.objects.labels import instance_label_size, read_instance_labels, truth_objects, write_instance_labels


def _error(path: Path) -> str:
    with pytest.raises(DataError) as caught:
        read_instance_labels(path)
    return str(caught.value)


ADVICE = "(save the ids as one grey channel of integers, 0 off nuclei: a 16/32-bit TIFF or an 8/16-bit PNG)"


# --------------------------------------------------------------------------------------------
# Reading and writing label images


def test_written_tiff_reads_back_equal_and_is_uint16_below_65536(tmp_path: Path) -> None:
    ids = np.arange(5 * 7, dtype=np.int32).reshape(5, 7) * 1000  # largest id 34000
    path = tmp_path / "a.tif"
    write_instance_labels(path, ids)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].dtype == np.uint16 and tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    back = read_instance_labels(path)
    assert back.dtype == np.int32 and np.array_equal(back, ids)
    assert instance_label_size(path) == (7, 5)
    assert [p.name for p in tmp_path.iterdir()] == ["a.tif"]  # the temp file was renamed away


def test_ids_of_65536_and_more_are_written_as_uint32(tmp_path: Path) -> None:
    ids = np.array([[0, 65535], [65536, 70001]], np.int64)
    write_instance_labels(tmp_path / "big.tif", ids)
    assert tifffile.imread(tmp_path / "big.tif").dtype == np.uint32
    assert read_instance_labels(tmp_path / "big.tif").tolist() == [[0, 65535], [65536, 70001]]


def test_writing_refuses_what_is_no_id_image(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2-D integers"):
        write_instance_labels(tmp_path / "f.tif", np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="negative, got -1"):
        write_instance_labels(tmp_path / "n.tif", np.array([[0, -1]]))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_grey_pngs_of_8_and_16_bits_are_read_as_ids(tmp_path: Path, dtype: type) -> None:
    ids = (np.arange(12).reshape(3, 4) * (7 if dtype == np.uint8 else 5000)).astype(dtype)
    Image.fromarray(ids).save(tmp_path / "p.png")
    assert instance_label_size(tmp_path / "p.png") == (4, 3)
    assert read_instance_labels(tmp_path / "p.png").tolist() == ids.astype(np.int64).tolist()


def test_float_tiff_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, np.ones((4, 4), np.float32))
    assert _error(path) == f"{path}: ids must be integers, this file holds float32 values {ADVICE}"
    with pytest.raises(DataError, match="float32"):
        instance_label_size(path)  # found from the header alone


def test_rgb_png_and_bool_tiff_are_refused(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(tmp_path / "rgb.png")
    assert _error(tmp_path / "rgb.png") == (
        f"{tmp_path / 'rgb.png'}: is not one 2-D grey image of ids: its pixels are 4x5x3 {ADVICE}")
    tifffile.imwrite(tmp_path / "bool.tif", np.ones((4, 4), bool))
    assert "ids must be integers, this file holds 1-bit (true/false) pixels" in _error(tmp_path / "bool.tif")


def test_negative_ids_jpeg_and_non_images_are_refused(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "neg.tif", np.array([[0, 3], [-2, 1]], np.int16))
    assert _error(tmp_path / "neg.tif") == f"{tmp_path / 'neg.tif'}: ids must not be negative, this file holds -2 {ADVICE}"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "lossy.jpg")
    assert "is a JPEG, whose lossy compression changes ids" in _error(tmp_path / "lossy.jpg")
    (tmp_path / "text.tif").write_text("not a tiff")
    assert _error(tmp_path / "text.tif").startswith(f"{tmp_path / 'text.tif'}: cannot be read as an instance label image (")
    (tmp_path / "empty.png").write_bytes(b"")
    assert "(it is empty (0 bytes))" in _error(tmp_path / "empty.png")


# --------------------------------------------------------------------------------------------
# The true objects of a mask


def _touching_pair() -> tuple[np.ndarray, np.ndarray]:
    """A mask with two touching malignant (2) squares and a lone benign (1) one, and their ids."""
    mask = np.zeros((6, 9), np.uint8)
    ids = np.zeros((6, 9), np.int32)
    mask[1:4, 1:7] = 2
    ids[1:4, 1:4], ids[1:4, 4:7] = 40, 7  # any positive ids: they are renumbered
    mask[5, 7:9], ids[5, 7:9] = 1, 3
    return mask, ids


def test_instance_ids_keep_touching_nuclei_apart_components_do_not() -> None:
    mask, ids = _touching_pair()
    labels, classes = truth_objects(mask, ids, 3)
    assert labels.dtype == np.int32 and sorted(np.unique(labels).tolist()) == [0, 1, 2, 3]
    assert [int(labels[1, 1]), int(labels[1, 6]), int(labels[5, 8])] == [3, 2, 1]  # sequential in id order
    assert classes.tolist() == [1, 2, 2]
    merged, merged_classes = truth_objects(mask, None, 3)
    assert merged_classes.tolist() == [1, 2]  # the touching pair is one component
    assert np.array_equal(merged > 0, mask > 0) and len(np.unique(merged[1:4, 1:7])) == 1


def test_components_are_4_connected() -> None:
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0] = mask[1, 1] = 1  # diagonal neighbours only
    labels, classes = truth_objects(mask, None, 2)
    assert classes.tolist() == [1, 1] and labels[0, 0] != labels[1, 1]


def test_an_object_takes_its_majority_class_and_ignored_or_background_ids_are_no_objects() -> None:
    mask = np.array([[1, 2, 2, IGNORE_INDEX, 0], [1, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 0]], np.uint8)
    ids = np.array([[1, 1, 1, 2, 3], [1, 1, 1, 2, 3]], np.int32)
    labels, classes = truth_objects(mask, ids, 3)
    # id 1: two benign, two malignant pixels (ties go to the lower index) and two ignored; ids 2
    # (all ignored) and 3 (all background) have no class and are dropped
    assert classes.tolist() == [1]
    assert labels.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0]]
    mask[1, 1] = 2
    assert truth_objects(mask, ids, 3)[1].tolist() == [2]


def test_an_image_without_nuclei_has_no_objects() -> None:
    empty = np.zeros((3, 3), np.uint8)
    for instances in (None, np.zeros((3, 3), np.int32)):
        labels, classes = truth_objects(empty, instances, 3)
        assert not labels.any() and classes.tolist() == [] and labels.shape == (3, 3)
