"""masks -> QuPath GeoJSON -> masks (``segkit prepare qupath-geojson``, read back by the
``qupath-geojson`` dataset): every object's pixels, class indices and instance ids come back,
ignored pixels too; the files are QuPath annotations; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from shapely.geometry import shape
from skimage.segmentation import relabel_sequential

from cli_results import invoke, single_error_line, snapshot
from segkit import toml_io
from segkit.data.images import read_mask
from segkit.classes import IGNORE_INDEX
from segkit.errors import DataError
from segkit.objects.labels import read_instance_labels, truth_objects, write_instance_labels
from segkit.engine.components import open_dataset
from segkit.plugins import get_registry
from segkit.project import load_project, project_classes
from segkit.specs import PrepareReport, PreparerRequest
from segkit_qupath.to_qupath import mask_objects, prepare_qupath
from segkit_synthetic.he_tiles import TileSettings
from segkit_synthetic.tile_folders import write_split
from tiny_data import COLOURS, tiny_project

NAMES = ("background", "benign", "malignant")
WHITE = (255, 255, 255)


def write_project(folder: Path, ignore: bool = False) -> Path:
    """The tiny project's classes (those of synthetic-he), with white as the ignore colour if asked."""
    document = tiny_project(**({"mask": {"ignore_color": list(WHITE)}} if ignore else {}))
    path = folder / "classes.toml"
    toml_io.write_atomic(path, toml_io.dumps(document))
    return path


def prepare(source: Path, output: Path, **options: Any) -> PrepareReport:
    return prepare_qupath(PreparerRequest(source, output, options))


def write_pair(split: Path, stem: str, mask_rgb: np.ndarray, ids: np.ndarray | None = None) -> None:
    for kind in ("images", "masks"):
        (split / kind).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(mask_rgb.shape, 200, np.uint8)).save(split / "images" / f"{stem}.png")
    Image.fromarray(mask_rgb).save(split / "masks" / f"{stem}.png")
    if ids is not None:
        write_instance_labels(split / "instances" / f"{stem}.tif", ids)


def coloured(classes: np.ndarray, ignored: np.ndarray | None = None) -> np.ndarray:
    rgb = np.array([COLOURS[c] for c in range(3)], np.uint8)[classes]
    if ignored is not None:
        rgb[ignored] = WHITE
    return rgb


def read_back(project: Path, split: str, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """(class indices with IGNORE_INDEX outside the regions, instance ids) of ``stem`` as the
    ``qupath-geojson`` dataset of the written ``project`` reads them."""
    source: Any = open_dataset(load_project(project), get_registry())
    pair = next(p for p in source.check(split) if p.stem == stem)
    _image, classes = source.load(pair)
    return classes, source.instances(pair)


def features_of(path: Path) -> list[dict[str, Any]]:
    """The features of a written file, each checked to be a valid QuPath annotation of a known class."""
    features: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["features"]
    for feature in features:
        properties = feature["properties"]
        assert properties["objectType"] == "annotation" and shape(feature["geometry"]).is_valid
        name = properties["classification"]["name"]
        assert name in NAMES[1:] or name in ("Region", "Labelled"), name
        if name in NAMES:
            assert properties["classification"]["color"] == list(COLOURS[NAMES.index(name)])
    return features


def test_synthetic_tiles_come_back_with_their_exact_ids_and_classes(tmp_path: Path) -> None:
    write_split(tmp_path / "src" / "train", count=3, first_seed=11, settings=TileSettings(size=96))
    project = write_project(tmp_path)
    report = prepare(tmp_path / "src", tmp_path / "out", project=project)
    assert report.counts == {"train": 3}
    table = project_classes(project)
    touching = 0
    for index in range(3):
        stem = f"tile_{index:04d}"
        mask, _ = read_mask(tmp_path / "src" / "train" / "masks" / f"{stem}.png", table)
        truth = read_instance_labels(tmp_path / "src" / "train" / "instances" / f"{stem}.tif")
        classes, ids = read_back(report.project_file, "train", stem)
        assert len(features_of(tmp_path / "out" / "train" / "geojson" / f"{stem}.geojson")) == truth.max()
        assert np.array_equal(classes, mask)
        assert np.array_equal(ids, np.where(mask > 0, truth, 0))
        # touching nuclei: 4-neighbours of two different ids, both on nuclei
        touching += int(((ids[:, 1:] != ids[:, :-1]) & (ids[:, 1:] > 0) & (ids[:, :-1] > 0)).sum())
    assert touching > 0  # the tiles hold touching nuclei, which only the ids tell apart
    linked, original = (tmp_path / folder / "train" / "images" / "tile_0000.png" for folder in ("out", "src"))
    assert linked.read_bytes() == original.read_bytes()
    assert linked.stat().st_ino == original.stat().st_ino  # hard-linked: one file on disk
    assert "images: all 3 hard-linked (no bytes copied)" in report.notes


def random_labels(seed: int, size: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Class indices and ids of random rectangles painted over each other, plus a ring with a
    hole, a ring around another object, and an object of two pieces that touch only at a corner."""
    rng = np.random.default_rng(seed)
    classes, ids = np.zeros((size, size), np.uint8), np.zeros((size, size), np.int32)
    for number in range(1, 9):
        top, left = rng.integers(0, size - 4, 2)
        height, width = rng.integers(1, 8, 2)
        classes[top:top + height, left:left + width] = rng.integers(1, 3)
        ids[top:top + height, left:left + width] = number
    classes[2:9, 2:9], ids[2:9, 2:9] = 1, 9      # a ring with a background hole ...
    classes[4:7, 4:7], ids[4:7, 4:7] = 0, 0
    classes[5, 5], ids[5, 5] = 2, 10             # ... holding an object of another class
    classes[30:32, 30:32], ids[30:32, 30:32] = 0, 0
    classes[30, 30], classes[31, 31], ids[30, 30], ids[31, 31] = 2, 2, 11, 11  # diagonal pieces
    return classes, ids


@pytest.mark.parametrize("with_ids", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_labels_with_holes_and_corner_touches_come_back(tmp_path: Path, seed: int, with_ids: bool) -> None:
    classes, ids = random_labels(seed)
    write_pair(tmp_path / "src" / "test", "random", coloured(classes), ids if with_ids else None)
    report = prepare(tmp_path / "src", tmp_path / "out", project=write_project(tmp_path))
    back_classes, back_ids = read_back(report.project_file, "test", "random")
    assert np.array_equal(back_classes, classes)
    # ids in their order, those painted over dropped; without ids the components of each class
    expected = relabel_sequential(ids)[0] if with_ids else truth_objects(classes, None, 3)[0]
    assert np.array_equal(back_ids, expected)
    features = features_of(tmp_path / "out" / "test" / "geojson" / "random.geojson")
    kinds = {f["geometry"]["type"] for f in features}
    if with_ids:  # id 11 is one object of two corner-touching pieces
        assert "MultiPolygon" in kinds and back_ids[30, 30] == back_ids[31, 31]
    else:  # 4-connected components: two objects
        assert back_ids[30, 30] != back_ids[31, 31]
    assert any(len(shape(f["geometry"]).interiors) for f in features if f["geometry"]["type"] == "Polygon")


def test_objects_cover_the_class_pixels_even_where_the_ids_do_not() -> None:
    classes = np.array([[1, 1, 0, 2], [1, 1, 0, 2], [0, 0, 0, 0]], np.uint8)
    ids = np.array([[5, 5, 5, 0], [5, 7, 0, 0], [0, 0, 0, 0]], np.int32)  # id 5 spills onto background
    labels, object_classes = mask_objects(classes, ids, 3)
    assert labels.tolist() == [[1, 1, 0, 3], [1, 2, 0, 3], [0, 0, 0, 0]]
    assert object_classes.tolist() == [1, 1, 2]


def test_an_instance_over_two_classes_takes_its_majority_and_the_notes_say_how_many_pixels(tmp_path: Path) -> None:
    classes = np.zeros((8, 8), np.uint8)
    classes[1:4, 1:5] = 1
    classes[3, 4] = 2  # one pixel of the instance is malignant in the mask
    ids = np.where(classes > 0, 4, 0).astype(np.int32)
    write_pair(tmp_path / "src" / "train", "mixed", coloured(classes), ids)
    report = prepare(tmp_path / "src", tmp_path / "out", project=write_project(tmp_path))
    back_classes, back_ids = read_back(report.project_file, "train", "mixed")
    assert np.array_equal(back_classes, np.where(classes > 0, 1, 0))
    assert np.array_equal(back_ids, (classes > 0).astype(np.int32))
    assert "1 pixels of instances that span two classes took their instance's majority class" in report.notes


def test_an_ignore_region_comes_back_as_the_region_class(tmp_path: Path) -> None:
    classes, ids = random_labels(3)
    ignored = np.zeros(classes.shape, bool)
    ignored[:, 24:] = True  # the right part was never labelled
    ignored[0:3, 0:3] = True
    classes[ignored], ids[ignored] = 0, 0
    write_pair(tmp_path / "src" / "train", "partial", coloured(classes, ignored), ids)
    write_pair(tmp_path / "src" / "train", "complete", coloured(classes), ids)
    nothing = np.ones(classes.shape, bool)
    write_pair(tmp_path / "src" / "train", "unlabelled", coloured(np.zeros_like(classes), nothing), 0 * ids)
    report = prepare(tmp_path / "src", tmp_path / "out", project=write_project(tmp_path, ignore=True),
                     region_class="Labelled")
    back_classes, back_ids = read_back(report.project_file, "train", "partial")
    assert np.array_equal(back_classes, np.where(ignored, IGNORE_INDEX, classes))  # ignored pixels too
    assert np.array_equal(back_ids, relabel_sequential(ids)[0])
    # no ignored pixel: the region is the whole image, which the region class would otherwise ignore
    assert np.array_equal(read_back(report.project_file, "train", "complete")[0], classes)
    # all ignored: no feature at all, and read back every pixel is ignored again
    assert features_of(tmp_path / "out" / "train" / "geojson" / "unlabelled.geojson") == []
    unlabelled_classes, unlabelled_ids = read_back(report.project_file, "train", "unlabelled")
    assert (unlabelled_classes == IGNORE_INDEX).all() and not unlabelled_ids.any()
    regions = [f for f in features_of(tmp_path / "out" / "train" / "geojson" / "partial.geojson")
               if f["properties"]["classification"]["name"] == "Labelled"]
    assert len(regions) == 1 and shape(regions[0]["geometry"]).area == (~ignored).sum()
    written = toml_io.loads((tmp_path / "out" / "qupath-geojson.toml").read_text())
    assert written["dataset"] == {"name": "qupath-geojson", "region_class": "Labelled",
                                  "train": {"images": "train/images", "geojson": "train/geojson"}}
    assert "each file outlines its labelled area as a 'Labelled' annotation" in " ".join(report.notes)


def test_the_written_project_keeps_the_source_project_and_lists_the_splits(tmp_path: Path) -> None:
    for split in ("train", "test"):
        write_pair(tmp_path / "src" / split, "a", coloured(random_labels(4)[0]))
    report = prepare(tmp_path / "src", tmp_path / "out", project=write_project(tmp_path), compress_geojson=True)
    assert report.project_file == tmp_path / "out" / "qupath-geojson.toml"
    written = toml_io.loads(report.project_file.read_text())
    source = tiny_project()
    assert written["project"] == {"name": "tiny-qupath", "seed": 7}
    assert written["classes"] == source["classes"]
    assert written["model"]["base_filters"] == source["model"]["base_filters"]
    assert sorted(k for k in written["dataset"] if k != "name") == ["test", "train"]
    assert written["infer"] == {"images": "test/images"}
    assert sorted(snapshot(tmp_path / "out")) == [".segkit-prepared.json", "qupath-geojson.toml",
                                                  "test/geojson/a.geojson.gz", "test/images/a.png",
                                                  "train/geojson/a.geojson.gz", "train/images/a.png"]


def test_a_project_of_classes_alone_decodes_the_masks_and_the_notes_ask_for_a_model(tmp_path: Path) -> None:
    classes, _ = random_labels(7)
    write_pair(tmp_path / "src" / "valid", "a", coloured(classes))
    classes_only = tmp_path / "classes-only.toml"
    classes_only.write_text(toml_io.dumps({"classes": tiny_project()["classes"]}))
    report = prepare(tmp_path / "src", tmp_path / "out", project=classes_only)
    assert f"{classes_only} has no [model] table, so neither has qupath-geojson.toml: add one before training" \
        in report.notes
    features = features_of(tmp_path / "out" / "valid" / "geojson" / "a.geojson")
    assert [f["properties"]["classification"]["name"] for f in features] == \
        [NAMES[c] for c in truth_objects(classes, None, 3)[1]]  # one feature per component, in its class


def test_a_region_class_that_is_a_project_class_is_refused_before_writing(tmp_path: Path) -> None:
    write_pair(tmp_path / "src" / "train", "a", coloured(random_labels(5)[0]))
    with pytest.raises(DataError, match="option region_class 'benign' is a class of .*classes.toml"):
        prepare(tmp_path / "src", tmp_path / "out", project=write_project(tmp_path, ignore=True),
                region_class="benign")
    assert not (tmp_path / "out").exists()


def test_bad_input_is_one_line_and_leaves_the_output_as_it_was(tmp_path: Path) -> None:
    write_pair(tmp_path / "src" / "train", "a", coloured(random_labels(6)[0]))
    project = write_project(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep me")
    before = snapshot(tmp_path / "out")
    busy = single_error_line(invoke("prepare", "qupath-geojson", tmp_path / "src", "--out", tmp_path / "out",
                                    "--option", f"project={project}"))
    assert busy.startswith("error: ") and "output folder is not empty" in busy
    no_project = single_error_line(invoke("prepare", "qupath-geojson", tmp_path / "src", "--out",
                                          tmp_path / "new"))
    assert no_project == ("error: segkit prepare qupath-geojson: option.project: is required but missing (segkit "
                          "project whose [[classes]] and [mask] decode the masks)")
    (tmp_path / "flat").mkdir()
    no_splits = single_error_line(invoke("prepare", "qupath-geojson", tmp_path / "flat", "--out", tmp_path / "new",
                                         "--option", f"project={project}"))
    assert no_splits == (f"error: {tmp_path / 'flat'}: holds no train, valid or test folder with images/ and "
                         "masks/ inside (pass a folder laid out as <split>/images and <split>/masks, e.g. what "
                         "segkit prepare ucsb-bcc writes)")
    bad_classes = tmp_path / "one-class.toml"
    bad_classes.write_text('[[classes]]\nname = "background"\ncolor = [0, 0, 0]\n')
    one_class = single_error_line(invoke("prepare", "qupath-geojson", tmp_path / "src", "--out", tmp_path / "new",
                                         "--option", f"project={bad_classes}"))
    assert one_class.startswith(f"error: {bad_classes}: classes: needs at least 2 classes (background first), got 1")
    (tmp_path / "src" / "train" / "masks" / "orphan.png").write_bytes(b"")
    orphan = single_error_line(invoke("prepare", "qupath-geojson", tmp_path / "src", "--out", tmp_path / "new",
                                      "--option", f"project={project}"))
    assert "orphan.png" in orphan
    assert snapshot(tmp_path / "out") == before and not (tmp_path / "new").exists()


def test_real_ucsb_sample_survives_the_trip_with_its_ignore_region(tmp_path: Path) -> None:
    from segkit_ucsb.prepare_ucsb import prepare_ucsb

    from shared_data import shared_data

    masks = tmp_path / "ucsb"
    ucsb = prepare_ucsb(PreparerRequest(shared_data("ucsb-bcc-sample"), masks, {"ignore_margin": 16}))
    report = prepare(masks, tmp_path / "out", project=ucsb.project_file)
    assert report.counts == ucsb.counts
    table = project_classes(ucsb.project_file)
    for split in ucsb.counts:
        for mask_file in sorted((masks / split / "masks").iterdir()):
            classes, ids = read_back(report.project_file, split, mask_file.stem)
            mask, _ = read_mask(mask_file, table)
            assert np.array_equal(classes, mask), mask_file.name  # nuclei, background and ignored pixels
            assert np.array_equal(ids, truth_objects(mask, None, 3)[0]), mask_file.name
