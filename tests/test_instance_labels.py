"""Instance labels in: reading/writing label images, the true objects of a mask, the folder dataset's
instance folders and synthetic-he's exact ids (segkit/objects/labels.py, segkit/data/folders.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from segkit.classes import IGNORE_INDEX, ClassInfo, ClassTable
from segkit.data.folders import FolderDataset, SplitFolders
from segkit.errors import DataError
from segkit.objects.labels import instance_label_size, read_instance_labels, truth_objects, write_instance_labels
from segkit.specs import InstanceSource
from cli_results import invoke, single_error_line, snapshot
from tiny_data import tiny_project, write_split, write_tiny_project

TABLE = ClassTable((ClassInfo("background", (0, 0, 0)), ClassInfo("benign", (0, 255, 0)),
                    ClassInfo("malignant", (255, 0, 0))))


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
    assert _error(tmp_path / "empty.png") == (f"{tmp_path / 'empty.png'}: cannot be read as an instance label image "
                                              "(it is empty (0 bytes)); re-export it or remove it from the folder")


def test_the_size_comes_from_the_header_alone(tmp_path: Path) -> None:
    path = tmp_path / "cut.tif"
    write_instance_labels(path, np.random.default_rng(0).integers(0, 500, (40, 30)))
    path.write_bytes(path.read_bytes()[:-800])  # the compressed pixels cut short, the header intact
    assert instance_label_size(path) == (30, 40)
    assert "cannot be read as an instance label image (" in _error(path)


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


# --------------------------------------------------------------------------------------------
# Folder datasets with instance folders


def _write_instances(split: Path) -> dict[str, np.ndarray]:
    """``split/instances/<stem>.tif``: the 4-connected nuclei of each mask, ids per image."""
    from skimage.measure import label

    written = {}
    for mask_file in sorted((split / "masks").iterdir()):
        ids = label(np.asarray(Image.open(mask_file)).any(axis=2), connectivity=1).astype(np.int32)
        write_instance_labels(split / "instances" / f"{mask_file.stem}.tif", ids)
        written[mask_file.stem] = ids
    return written


def _split_with_instances(root: Path) -> tuple[FolderDataset, dict[str, np.ndarray]]:
    write_split(root, 3, 0)
    written = _write_instances(root)
    folders = SplitFolders(root / "images", root / "masks", root / "instances")
    return FolderDataset({"train": folders, "plain": SplitFolders(root / "images", root / "masks")}, TABLE), written


def test_a_folder_dataset_pairs_instance_files_by_stem_and_reads_their_ids(tmp_path: Path) -> None:
    dataset, written = _split_with_instances(tmp_path)
    assert isinstance(dataset, InstanceSource)
    pairs = dataset.check("train")
    assert [(p.stem, p.instances) for p in pairs] == [(s, tmp_path / "instances" / f"{s}.tif") for s in written]
    for pair in pairs:
        ids = dataset.instances(pair)
        assert ids is not None and ids.dtype == np.int32 and np.array_equal(ids, written[pair.stem])
        assert ids.max() >= 1  # the tiny images hold nuclei
    assert [dataset.instances(p) for p in dataset.pairs("plain")] == [None, None, None]


def test_a_missing_instance_file_is_named(tmp_path: Path) -> None:
    dataset, _ = _split_with_instances(tmp_path)
    (tmp_path / "instances" / "img_01.tif").unlink()
    with pytest.raises(DataError) as caught:
        dataset.pairs("train")
    assert str(caught.value) == (f"images without an instance label file in {tmp_path / 'instances'}: img_01.png "
                                 "(instance label files pair with images by file stem; rename or remove these)")


def test_check_refuses_an_instance_file_of_another_size_from_its_header(tmp_path: Path) -> None:
    dataset, _ = _split_with_instances(tmp_path)
    path = tmp_path / "instances" / "img_02.tif"
    write_instance_labels(path, np.ones((64, 32), np.int32))
    with pytest.raises(DataError) as caught:
        dataset.check("train")
    message = (f"{path}: instance labels are 32x64 but its image img_02.png is 64x64; "
               "instance labels must have their image's size")
    assert str(caught.value) == message
    with pytest.raises(DataError, match="instance labels are 32x64"):
        dataset.instances(dataset.pairs("train")[2])  # also when no check ran first


def _spoil_size(path: Path) -> None:
    write_instance_labels(path, np.ones((32, 64), np.int32))


def _spoil_float(path: Path) -> None:
    tifffile.imwrite(path, np.ones((64, 64), np.float64))


def _spoil_rgb(path: Path) -> None:
    path.unlink()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(path.with_suffix(".png"))


BAD_INSTANCE_FILES = [
    ("other-size", _spoil_size, "{root}/data/train/instances/img_03.tif: instance labels are 64x32 but its image "
     "img_03.png is 64x64; instance labels must have their image's size"),
    ("float", _spoil_float, "{root}/data/train/instances/img_03.tif: ids must be integers, this file holds float64 values " + ADVICE),
    ("rgb-png", _spoil_rgb, "{root}/data/train/instances/img_03.png: is not one 2-D grey image of ids: its pixels are 64x64x3 " + ADVICE),
    ("missing", lambda path: path.unlink(), "images without an instance label file in {root}/data/train/instances: "
     "img_03.png (instance label files pair with images by file stem; rename or remove these)"),
]


@pytest.mark.parametrize(("spoil", "expected"), [c[1:] for c in BAD_INSTANCE_FILES], ids=[c[0] for c in BAD_INSTANCE_FILES])
def test_train_refuses_a_bad_instance_file_before_touching_the_run_folder(tmp_path: Path, spoil: Callable[[Path], None],
                                                                          expected: str) -> None:
    dataset = tiny_project()["dataset"]
    dataset["train"]["instances"] = "data/train/instances"
    project = write_tiny_project(tmp_path, epochs=1, dataset=dataset)
    _write_instances(tmp_path / "data" / "train")
    spoil(tmp_path / "data" / "train" / "instances" / "img_03.tif")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "earlier.txt").write_text("an earlier run's file")
    before = snapshot(tmp_path / "run")
    result = invoke("train", project, "--overwrite")
    line = single_error_line(result)
    assert line == "error: " + expected.replace("{root}", str(tmp_path.resolve()))
    assert "training tiny" not in result.output
    assert snapshot(tmp_path / "run") == before


def test_categorized_masks_takes_an_instances_folder_relative_to_the_project_file(tmp_path: Path) -> None:
    from segkit.engine.components import open_dataset
    from segkit.plugins import get_registry
    from segkit.project import load_project

    dataset = tiny_project()["dataset"]
    dataset["valid"]["instances"] = "data/valid/instances"
    project = write_tiny_project(tmp_path, epochs=1, dataset=dataset)
    written = _write_instances(tmp_path / "data" / "valid")
    source = open_dataset(load_project(project), get_registry())
    assert isinstance(source, InstanceSource)
    pairs = source.check("valid")
    assert len(pairs) == 4 and all(np.array_equal(source.instances(p), written[p.stem]) for p in pairs)
    assert all(source.instances(p) is None for p in source.check("train"))


# --------------------------------------------------------------------------------------------
# synthetic-he's exact ids


@pytest.fixture(scope="module")
def tiles_with_ids() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    from segkit_synthetic.he_tiles import TileSettings, generate_tile_with_instances

    settings = TileSettings(size=64, malignant_fraction=1.0, mixed_fraction=0.0)
    mixed = TileSettings(size=64, mixed_fraction=1.0)
    return ([generate_tile_with_instances(seed, settings) for seed in range(4)]
            + [generate_tile_with_instances(seed, mixed) for seed in range(2)])


def _class_indices(mask: np.ndarray) -> np.ndarray:
    return TABLE.decode(mask)[0]


def test_synthetic_ids_are_consecutive_cover_every_nucleus_pixel_and_have_one_class_each(
        tiles_with_ids: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    for _image, mask, ids in tiles_with_ids:
        classes = _class_indices(mask)
        assert ids.dtype == np.int32
        assert np.unique(ids).tolist() == list(range(int(ids.max()) + 1)) and ids.max() >= 2
        assert np.array_equal(ids > 0, classes > 0)  # every nucleus pixel has an id, and only those
        for object_id in range(1, int(ids.max()) + 1):
            assert len(np.unique(classes[ids == object_id])) == 1


def test_touching_malignant_nuclei_keep_their_own_ids(
        tiles_with_ids: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    from skimage.measure import label

    shared = 0
    for _image, mask, ids in tiles_with_ids[:4]:
        components = label(_class_indices(mask) == 2, connectivity=1)
        shared += sum(len(np.unique(ids[components == c])) > 1 for c in range(1, int(components.max()) + 1))
        with_ids, without = truth_objects(_class_indices(mask), ids, 3), truth_objects(_class_indices(mask), None, 3)
        assert with_ids[1].tolist() == [2] * int(ids.max())
        assert without[1].tolist() == [2] * int(components.max())
    assert shared >= 2  # seeds 0..3 at 64x64 hold (at least) two blobs of touching nuclei


def test_synthetic_he_writes_its_ids_and_serves_them_as_an_instance_source(tmp_path: Path) -> None:
    from segkit.specs import DatasetRequest
    from segkit_synthetic.he_tiles import TileSettings, generate_tile_with_instances
    from segkit_synthetic.synthetic_dataset import SYNTHETIC_OPTIONS, open_synthetic_he

    options = {option.name: option.default for option in SYNTHETIC_OPTIONS}
    options.update(tile_size=48, train_count=2, valid_count=1, test_count=1, seed=5)
    source = open_synthetic_he(DatasetRequest(options, TABLE, tmp_path, 3))
    assert isinstance(source, InstanceSource)
    settings = TileSettings.from_class_table(TABLE, size=48)
    for index, pair in enumerate(source.check("train")):  # the train split takes the seeds after test's
        assert pair.instances == tmp_path / "synthetic-he" / "train" / "instances" / f"tile_{index:04d}.tif"
        assert tifffile.imread(pair.instances).dtype == np.uint16
        expected = generate_tile_with_instances(5 + 1 + index, settings)[2]
        assert np.array_equal(source.instances(pair), expected)
