"""QuPath GeoJSON in: the reader and rasteriser (segkit.objects.geojson_in) and the ``qupath-geojson`` dataset."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shapely.geometry import MultiPolygon, Polygon, mapping
from skimage.draw import polygon as draw_polygon

from segkit.errors import DataError
from segkit.objects.geojson_in import geojson_stem, paint, pixels_inside, read_features
from segkit.objects.outlines import object_outlines

#: a 6x4 box from x 1..7, y 2..6 with a 2x2 hole at x 3..5, y 3..5 (pixel corners, as QuPath draws them)
BOX_WITH_HOLE = Polygon([(1, 2), (7, 2), (7, 6), (1, 6)], [[(3, 3), (5, 3), (5, 5), (3, 5)]])
#: two unit-corner squares: x 10..12, y 1..3 and x 13..14, y 8..11
TWO_SQUARES = MultiPolygon([Polygon([(10, 1), (12, 1), (12, 3), (10, 3)]),
                            Polygon([(13, 8), (14, 8), (14, 11), (13, 11)])])


def feature(geometry: Any, classification: Any = None, *, legacy: bool = False, kind: str = "annotation",
            **extra: Any) -> dict[str, Any]:
    """A feature as QuPath writes it (``legacy``: ``object_type`` as QuPath 0.2 did)."""
    properties: dict[str, Any] = {("object_type" if legacy else "objectType"): kind}
    if classification is not None:
        properties["classification"] = classification
    geo = mapping(geometry) if geometry is not None and not isinstance(geometry, dict) else geometry
    return {"type": "Feature", "id": "f", "geometry": geo, "properties": properties, **extra}


def write_geojson(path: Path, document: Any) -> Path:
    text = json.dumps(document)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def expected_box_pixels(shape: tuple[int, int]) -> np.ndarray:
    """BOX_WITH_HOLE and TWO_SQUARES counted by hand: 1 inside the box, 2 inside the squares."""
    expected = np.zeros(shape, np.int32)
    expected[2:6, 1:7] = 1
    expected[3:5, 3:5] = 0
    expected[1:3, 10:12] = 2
    expected[8:11, 13:14] = 2
    return expected


@pytest.mark.parametrize("name, document", [
    ("fc.geojson", collection(feature(BOX_WITH_HOLE, {"name": "Tumor", "color": [200, 0, 0]}),
                              feature(TWO_SQUARES, {"name": "Stroma", "color": [0, 150, 0]}))),
    ("bare.json", [feature(BOX_WITH_HOLE, "Tumor", legacy=True), feature(TWO_SQUARES, "Stroma", legacy=True)]),
    ("zipped.geojson.gz", collection(feature(BOX_WITH_HOLE, "Tumor"), feature(TWO_SQUARES, {"names": ["Stroma"]}))),
])
def test_each_variant_reads_to_the_same_features_and_pixels(tmp_path: Path, name: str, document: Any) -> None:
    read = read_features(write_geojson(tmp_path / name, document), (16, 12))
    assert [(f.index, f.class_name, f.object_type) for f in read.features] == [
        (0, "Tumor", "annotation"), (1, "Stroma", "annotation")]
    assert read.features[0].geometry.equals(BOX_WITH_HOLE) and read.features[1].geometry.equals(TWO_SQUARES)
    assert read.bad == () and read.without_area == ()
    painted = paint([f.geometry for f in read.features], [1, 2], (12, 16))
    assert (painted == expected_box_pixels((12, 16))).all()
    assert int((painted == 1).sum()) == 6 * 4 - 2 * 2 and int((painted == 2).sum()) == 4 + 3


def test_a_single_feature_and_derived_class_names(tmp_path: Path) -> None:
    path = write_geojson(tmp_path / "one.geojson", feature(BOX_WITH_HOLE, {"names": ["Tumor", "Positive"]}))
    read = read_features(path)
    assert [(f.class_name, f.geometry.area) for f in read.features] == [("Tumor: Positive", 20.0)]


def test_a_cell_is_read_as_its_nucleus(tmp_path: Path) -> None:
    cell = Polygon([(0, 0), (8, 0), (8, 8), (0, 8)])
    nucleus = Polygon([(2, 2), (5, 2), (5, 4), (2, 4)])
    path = write_geojson(tmp_path / "cells.geojson", collection(
        feature(cell, "Tumor", kind="cell", nucleusGeometry=mapping(nucleus)), feature(cell, "Tumor", kind="cell")))
    first, second = read_features(path, (8, 8)).features
    assert first.geometry.equals(nucleus) and second.geometry.equals(cell)


def test_contains_rule_matches_skimage_polygon_on_off_grid_vertices() -> None:
    """Centres inside, holes out: the same pixels as skimage.draw.polygon (exterior minus hole) at
    the same vertices shifted by half a pixel (skimage puts pixel centres on integers)."""
    exterior = [(2.3, 1.2), (27.6, 4.1), (21.2, 19.7), (9.4, 26.3), (1.7, 13.8)]
    hole = [(9.2, 8.4), (16.3, 9.1), (12.8, 15.6)]
    shape = (30, 32)
    expected = np.zeros(shape, bool)
    for ring, value in ((exterior, True), (hole, False)):
        xs, ys = np.array(ring).T
        expected[draw_polygon(ys - 0.5, xs - 0.5, shape)] = value
    ours = np.zeros(shape, bool)
    ours[pixels_inside(Polygon(exterior, [hole]), shape)] = True
    assert expected.sum() > 300 and (ours == expected).all()


def test_outlines_written_by_segkit_rasterise_back_to_their_labels() -> None:
    from skimage.draw import disk

    labels = np.zeros((40, 48), np.int32)
    labels[disk((12, 12), 7.5, shape=labels.shape)] = 1
    labels[disk((26, 30), 9, shape=labels.shape)] = 2
    labels[22:30, 8:16] = 3
    labels[24:28, 10:14] = 0  # a hole
    labels[0:3, 40:48] = 4  # on the image's edge
    outlines = object_outlines(labels, 4)
    assert (paint(outlines, [1, 2, 3, 4], labels.shape) == labels).all()


def test_later_features_paint_over_earlier_ones() -> None:
    big, small = Polygon([(0, 0), (6, 0), (6, 6), (0, 6)]), Polygon([(2, 2), (4, 2), (4, 4), (2, 4)])
    over = paint([big, small], [1, 2], (6, 6))
    assert int((over == 2).sum()) == 4 and int((over == 1).sum()) == 32
    under = paint([small, big], [2, 1], (6, 6))
    assert (under == 1).all()


def test_geojson_stems_pair_with_image_stems() -> None:
    assert [geojson_stem(Path(name)) for name in ("a.geojson", "b.json", "c.geojson.gz", "d.GeoJSON")] == [
        "a", "b", "c", "d"]


BOWTIE = {"type": "Polygon", "coordinates": [[[0, 0], [4, 4], [4, 0], [0, 4], [0, 0]]]}


@pytest.mark.parametrize("bad, problem", [
    ({"type": "Feature", "properties": {"objectType": "annotation"}}, "has no geometry"),
    (feature(None, "Tumor"), "has no geometry"),
    (feature(BOWTIE, "Tumor"), "has an invalid Polygon: Self-intersection[2 2]"),
    (feature(Polygon([(10, 10), (30, 10), (30, 12), (10, 12)]), "Tumor"),
     "reaches x 10..30, y 10..12, outside the 16x12 image (was it exported from another image, or at another "
     "resolution?)"),
    (feature({"type": "GeometryCollection", "geometries": []}, "Tumor"),
     "has a GeometryCollection geometry; only Polygon and MultiPolygon can label pixels"),
    (feature({"type": "Polygon", "coordinates": [[[0, 0], [1]]]}, "Tumor"), "has Polygon coordinates that cannot"),
])
def test_bad_features_are_named_by_index_and_the_good_ones_kept(tmp_path: Path, bad: Any, problem: str) -> None:
    path = write_geojson(tmp_path / "a.geojson", collection(feature(BOX_WITH_HOLE, "Tumor"), bad,
                                                            feature(TWO_SQUARES, "Stroma")))
    read = read_features(path, (16, 12))
    assert [f.index for f in read.features] == [0, 2]
    assert len(read.bad) == 1 and read.bad[0].index == 1 and read.bad[0].problem.startswith(problem)
    assert str(read.error(read.bad[0])).startswith(f"{path}: feature 2 of 3: {problem}")


def test_points_and_lines_are_set_aside_not_refused(tmp_path: Path) -> None:
    path = write_geojson(tmp_path / "a.geojson", [
        feature({"type": "Point", "coordinates": [3, 3]}, "Tumor"), feature(BOX_WITH_HOLE, "Tumor"),
        feature({"type": "LineString", "coordinates": [[0, 0], [3, 3]]}, "Tumor")])
    read = read_features(path, (16, 12))
    assert [f.index for f in read.features] == [1] and read.bad == ()
    assert [(b.index, b.problem) for b in read.without_area] == [
        (0, "is a Point, which has no area to label (left out)"),
        (2, "is a LineString, which has no area to label (left out)")]


@pytest.mark.parametrize("content, message", [
    (b"{not json", "is not JSON (Expecting property name enclosed in double quotes: line 1 column 2 "
     "(char 1); export it again from QuPath with File > Export objects as GeoJSON)"),
    (b'{"type": "Topology"}', "is not GeoJSON features (found an object of type 'Topology'; expected a "
     "FeatureCollection, a list of Features or one Feature, as QuPath's Export objects as GeoJSON writes)"),
    (b"42", "is not GeoJSON features (found a JSON int; expected"),
])
def test_a_file_that_is_not_geojson_is_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "a.geojson").write_bytes(content)
    with pytest.raises(DataError) as caught:
        read_features(tmp_path / "a.geojson")
    assert str(caught.value).startswith(f"{tmp_path / 'a.geojson'}: {message}")


def test_a_gz_that_is_not_gzip_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.geojson.gz").write_text("[]")
    with pytest.raises(DataError) as caught:
        read_features(tmp_path / "a.geojson.gz")
    assert str(caught.value) == f"{tmp_path / 'a.geojson.gz'}: cannot be read (Not a gzipped file (b'[]'); export it again from QuPath)"


# --- the qupath-geojson dataset --------------------------------------------------------------------------------

#: QuPath's names of the tiny project's classes, mapped with [dataset] class_names
QUPATH_NAMES = {1: "Benign", 2: "Tumor"}
CLASS_NAMES = ["Benign=benign", "Tumor=malignant"]
SPLITS = {"train": (4, 0), "valid": (2, 100), "test": (2, 200)}


def tiny_truth(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """tiny_data's picture ``seed``: image, class mask, and its objects (ids 1..N, classes)."""
    from segkit.objects.labels import truth_objects
    from tiny_data import COLOURS, blob_pair

    image, rgb = blob_pair(seed)
    mask = np.zeros(rgb.shape[:2], np.uint8)
    for index, colour in COLOURS.items():
        mask[(rgb == colour).all(axis=2)] = index
    labels, classes = truth_objects(mask, None, 3)
    return image, mask, labels, classes


def features_of_labels(labels: np.ndarray, classes: np.ndarray) -> list[dict[str, Any]]:
    """The objects of a label image as QuPath annotations (segkit's own outlines: pixel squares)."""
    outlines = object_outlines(labels, len(classes))
    return [feature(outline, {"name": QUPATH_NAMES[int(cls)], "color": [0, 0, 0]}) for outline, cls in
            zip(outlines, classes)]


def write_qupath_project(root: Path, **dataset: Any) -> Path:
    """The tiny project's pictures as images/ + geojson/ folders, and a qupath-geojson project (1 epoch) on them."""
    from PIL import Image

    from segkit import toml_io
    from tiny_data import HEADER, tiny_project

    for split, (count, first_seed) in SPLITS.items():
        for folder in ("images", "geojson"):
            (root / "data" / split / folder).mkdir(parents=True, exist_ok=True)
        for number in range(count):
            image, _, labels, classes = tiny_truth(first_seed + number)
            Image.fromarray(image).save(root / "data" / split / "images" / f"img_{number}.png")
            write_geojson(root / "data" / split / "geojson" / f"img_{number}.geojson",
                          collection(*features_of_labels(labels, classes)))
    splits = {split: {"images": f"data/{split}/images", "geojson": f"data/{split}/geojson"} for split in SPLITS}
    document = tiny_project(epochs=1, dataset={"name": "qupath-geojson", **splits, "class_names": CLASS_NAMES,
                                               **dataset},
                            callbacks=[], infer={"images": "data/test/images"},
                            instances={"name": "connected-components", "min_area": 1})
    project = root / "tiny.toml"
    project.write_text(HEADER + toml_io.dumps(document), encoding="utf-8")
    return project


def open_source(project: Path, *overrides: str) -> Any:
    from segkit.engine.components import open_dataset
    from segkit.plugins import get_registry
    from segkit.project import load_project

    return open_dataset(load_project(project, list(overrides), get_registry()), get_registry())


@pytest.fixture(scope="module")
def qupath_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_qupath_project(tmp_path_factory.mktemp("qupath"))


def test_load_gives_back_the_masks_and_objects_the_geojson_was_drawn_from(qupath_project: Path) -> None:
    source = open_source(qupath_project)
    pairs = source.check("train")
    assert [(p.image.name, p.mask.name) for p in pairs] == [(f"img_{n}.png", f"img_{n}.geojson") for n in range(4)]
    for number, pair in enumerate(pairs):
        image, mask, labels, _ = tiny_truth(number)
        loaded_image, loaded_mask = source.load(pair)
        assert (loaded_image == image).all() and loaded_mask.dtype == np.uint8 and (loaded_mask == mask).all()
        assert (source.instances(pair) == labels).all()
    assert source.notes() == []


def region_file(path: Path) -> Path:
    """A Region over the left 8 columns of a 16x12 image, a Tumor box across it, and the box with its hole."""
    region = Polygon([(0, 0), (8, 0), (8, 12), (0, 12)])
    tumor = Polygon([(6, 8), (12, 8), (12, 10), (6, 10)])
    return write_geojson(path, collection(feature(region, "Region"), feature(tumor, "Tumor"),
                                          feature(BOX_WITH_HOLE, {"name": "Benign", "color": [1, 2, 3]})))


def test_a_region_class_ignores_everything_outside_its_regions(tmp_path: Path) -> None:
    from PIL import Image

    from segkit.classes import IGNORE_INDEX

    project = write_qupath_project(tmp_path, region_class="Region")
    images, labels = tmp_path / "data" / "train" / "images", tmp_path / "data" / "train" / "geojson"
    for path in [*images.iterdir(), *labels.iterdir()]:
        path.unlink()
    Image.new("RGB", (16, 12)).save(images / "r.png")
    region_file(labels / "r.geojson")
    source = open_source(project)
    assert source.partial_labels() is True
    _, mask = source.load(source.pairs("train")[0])
    expected = np.full((12, 16), IGNORE_INDEX, np.uint8)
    expected[:, :8] = 0
    expected[8:10, 6:8] = 2
    expected[2:6, 1:7] = 1
    expected[3:5, 3:5] = 0
    assert (mask == expected).all()
    ids = source.instances(source.pairs("train")[0])
    assert sorted(np.unique(ids).tolist()) == [0, 1, 2] and int((ids == 1).sum()) == 12  # the whole tumor box


def test_class_names_map_qupath_names_and_a_bad_entry_is_one_line(qupath_project: Path, tmp_path: Path) -> None:
    from cli_results import invoke, single_error_line

    result = invoke("train", qupath_project, "--set", 'dataset.class_names=["Tumor=malignnt"]')
    assert single_error_line(result) == (
        f"error: {qupath_project}: dataset: class_names: Tumor=malignnt: unknown class 'malignnt' (available: "
        "background, benign, malignant); did you mean 'malignant'?")
    result = invoke("train", qupath_project, "--set", 'dataset.class_names=["Tumor"]')
    assert single_error_line(result) == (f'error: {qupath_project}: dataset: class_names: "Tumor" is not '
                                         '"QuPath name=class name" (e.g. "Tumor=malignant")')


def _broken_copy(qupath_project: Path, tmp_path: Path, name: str, document: Any) -> tuple[Path, Path]:
    """A copy of the project whose train file ``img_1`` is replaced by ``document`` (bytes as they are),
    and the run folder holding one earlier file."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(qupath_project.parent, root)
    labels = root / "data" / "train" / "geojson"
    (labels / "img_1.geojson").unlink()
    path = labels / name
    if isinstance(document, bytes):
        path.write_bytes(document)
    else:
        write_geojson(path, document)
    (root / "run").mkdir(exist_ok=True)
    (root / "run" / "earlier.txt").write_text("kept")
    return root / qupath_project.name, path


_ADVICE = "fix or delete it in QuPath and export again, or set [dataset] skip_bad_features = true"
_GOOD = feature(BOX_WITH_HOLE, "Tumor")


@pytest.mark.parametrize("name, document, message", [
    ("img_1.geojson", b"[{]", "{path}: is not JSON (Expecting property name enclosed in double quotes: line 1 column "
     "3 (char 2); export it again from QuPath with File > Export objects as GeoJSON)"),
    ("img_1.json", collection(_GOOD, {"type": "Feature", "properties": {}}),
     f"{{path}}: feature 2 of 2: has no geometry ({_ADVICE})"),
    ("img_1.geojson", [_GOOD, _GOOD, feature(BOWTIE, "Tumor")],
     f"{{path}}: feature 3 of 3: has an invalid Polygon: Self-intersection[2 2] ({_ADVICE})"),
    ("img_1.geojson.gz", collection(feature(BOX_WITH_HOLE, "Tumour")),
     '{path}: feature 1 of 1: unknown QuPath class "Tumour" (available: Benign, Region, Tumor, background, benign, '
     'malignant); did you mean "Tumor"? (add it to [[classes]], map it with [dataset] class_names = ["Tumour=<class>"],'
     ' or set [dataset] skip_bad_features = true)'),
    ("img_1.geojson", collection(feature(Polygon([(60, 60), (70, 60), (70, 63), (60, 63)]), "Tumor")),
     "{path}: feature 1 of 1: reaches x 60..70, y 60..63, outside the 64x64 image (was it exported from another "
     f"image, or at another resolution?) ({_ADVICE})"),
])
def test_each_bad_geojson_is_one_line_before_the_run_folder_is_touched(qupath_project: Path, tmp_path: Path, name: str,
                                                                       document: Any, message: str) -> None:
    from cli_results import invoke, single_error_line, snapshot

    project, path = _broken_copy(qupath_project, tmp_path, name, document)
    before = snapshot(project.parent / "run")
    result = invoke("train", project, "--set", "dataset.region_class='Region'")
    assert single_error_line(result) == "error: " + message.format(path=path)
    assert snapshot(project.parent / "run") == before


def test_an_image_without_its_geojson_or_the_reverse_is_one_line(qupath_project: Path, tmp_path: Path) -> None:
    from cli_results import invoke, single_error_line

    project, path = _broken_copy(qupath_project, tmp_path, "other.geojson", collection(_GOOD))
    folder = path.parent
    assert single_error_line(invoke("train", project)) == (
        f"error: images without a GeoJSON file in {folder}: img_1.png; GeoJSON files without an image in "
        f"{folder.parent / 'images'}: other.geojson (GeoJSON files pair with images by file stem; rename or remove these)")


def test_skip_bad_features_keeps_the_good_ones_and_notes_each_skipped(qupath_project: Path, tmp_path: Path) -> None:
    project, path = _broken_copy(qupath_project, tmp_path, "img_1.geojson", collection(
        feature(BOWTIE, "Tumor"), _GOOD, {"type": "Feature", "geometry": None}, feature(BOX_WITH_HOLE, "Tumour"),
        feature({"type": "Point", "coordinates": [1, 1]}, "Tumor")))
    source = open_source(project, "dataset.skip_bad_features=true")
    pair = source.check("train")[1]
    _, mask = source.load(pair)
    assert (mask == 2 * (expected_box_pixels((64, 64)) == 1)).all()  # only the good box, Tumor=malignant
    assert source.notes() == [
        f"{path}: feature 1 of 5: has an invalid Polygon: Self-intersection[2 2] (skipped)",
        f"{path}: feature 3 of 5: has no geometry (skipped)",
        f'{path}: feature 4 of 5: unknown QuPath class "Tumour" (available: Benign, Tumor, background, benign, '
        'malignant); did you mean "Tumor"? (skipped)',
        f"{path}: 1 feature(s) without area (Point) left out",
    ]


def test_a_qupath_project_trains_evaluates_and_infers_end_to_end(qupath_project: Path, tmp_path: Path) -> None:
    """One epoch on the GeoJSON-labelled pictures, then its model swapped for one that finds the discs
    exactly (test_infer_objects'): eval scores objects against the drawn nuclei (every feature one
    true object, all found); infer's detections read back through this reader to its own label images."""
    import csv

    import tifffile

    from cli_results import invoke
    from segkit.run_folder import EVALUATION, EVALUATION_PER_IMAGE
    from test_infer_objects import save_colour_model

    run = qupath_project.parent / "run"
    result = invoke("train", qupath_project, "--quiet")
    assert result.exit_code == 0, result.output
    save_colour_model(run / "models" / "best_model.keras")
    result = invoke("eval", qupath_project)
    assert result.exit_code == 0, result.output
    with (run / EVALUATION).open(newline="", encoding="utf-8") as handle:
        figures = {row["metric"]: float(row["value"]) for row in csv.DictReader(handle)}
    drawn = sum(len(read_features(path).features)
                for path in (qupath_project.parent / "data" / "test" / "geojson").iterdir())
    assert drawn > 0 and (figures["object_tp"], figures["object_fn"], figures["object_fp"]) == (drawn, 0, 0)
    with (run / EVALUATION_PER_IMAGE).open(newline="", encoding="utf-8") as handle:
        assert [row["image"] for row in csv.DictReader(handle)] == ["img_0.png", "img_1.png"]
    out = tmp_path / "masks"
    result = invoke("infer", qupath_project, qupath_project.parent / "data" / "test" / "images", "--out", out)
    assert result.exit_code == 0, result.output
    nuclei = 0  # the detections are the drawn nuclei, as the scores say
    for stem in ("img_0", "img_1"):
        labels = tifffile.imread(tmp_path / "masks_objects" / f"{stem}.tif")
        nuclei += int(labels.max())
        found = read_features(tmp_path / "masks_objects" / f"{stem}.geojson", (64, 64))
        assert [f.object_type for f in found.features] == ["detection"] * int(labels.max())
        painted = paint([f.geometry for f in found.features], range(1, len(found.features) + 1), labels.shape)
        assert (painted == labels).all()
    assert nuclei == drawn


def test_stats_counts_class_pixels_objects_per_class_and_unknown_names(qupath_project: Path, tmp_path: Path) -> None:
    from cli_results import invoke

    project, path = _broken_copy(qupath_project, tmp_path, "img_1.geojson", collection(
        feature(BOX_WITH_HOLE, "Tumor"), feature(TWO_SQUARES, "Necrosis"), feature(BOWTIE, "Tumor"),
        feature(Polygon([(20, 20), (22, 20), (22, 21), (20, 21)]), "Necrosis")))
    result = invoke("stats", project, "--json", tmp_path / "stats.json")
    assert result.exit_code == 0, result.output
    splits = {split["name"]: split for split in json.loads((tmp_path / "stats.json").read_text())["splits"]}
    truths = [tiny_truth(seed) for seed in (0, 2, 3)]  # train img_0, img_2, img_3 as drawn; img_1 replaced
    expected = [sum(int((classes == index).sum()) for *_, classes in truths) for index in (1, 2)]
    assert splits["train"]["objects"] == [{"class": "background", "count": 0},
                                          {"class": "benign", "count": expected[0]},
                                          {"class": "malignant", "count": expected[1] + 1}]
    assert splits["train"]["unknown_classes"] == [{"name": "Necrosis", "objects": 2}]
    malignant = sum(int((mask == 2).sum()) for _, mask, *_ in truths) + 20  # the box with its hole
    assert splits["train"]["classes"][2]["pixels"] == malignant
    assert splits["train"]["problems"] == [{"file": "geojson/img_1.geojson", "reason": "3 label(s) cannot be used "
                                            "and were not counted (segkit train names each)"}]
    valid_objects = sum(len(tiny_truth(seed)[3]) for seed in (100, 101))
    assert sum(row["count"] for row in splits["valid"]["objects"]) == valid_objects
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in result.output.splitlines() if "│" in line]
    first = [row[:2] for row in rows].index(["train", "[██] background"])  # the classes table's train rows
    assert [(row[1], row[2], row[-1]) for row in rows[first:first + 3]] == [
        ("[██] background", f"{64 * 64 * 4 - sum(int((m > 0).sum()) for _, m, *_ in truths) - 20:,}", "0"),  # Necrosis paints nothing
        ("[██] benign", f"{sum(int((m == 1).sum()) for _, m, *_ in truths):,}", str(expected[0])),
        ("[██] malignant", f"{malignant:,}", str(expected[1] + 1))]
    assert ["train", "Necrosis", "2"] in rows and "Mask colours farther" not in result.output


def test_stats_and_checking_a_qupath_project_import_no_tensorflow(qupath_project: Path) -> None:
    from segkit_process import output_of, run_python

    code = ("import sys; from segkit.cli.main import main; sys.argv = ['segkit', 'stats', "
            f"{str(qupath_project)!r}]\ntry:\n    main()\nexcept SystemExit as end:\n    assert not end.code, end.code\n"
            "from segkit.engine.components import open_dataset; from segkit.plugins import get_registry; "
            "from segkit.project import load_project\n"
            f"open_dataset(load_project(__import__('pathlib').Path({str(qupath_project)!r})), get_registry()).check('train')\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'")
    result = run_python(code)
    assert result.returncode == 0, output_of(result)


def test_a_region_class_gives_training_its_ignore_weights(qupath_project: Path) -> None:
    from segkit.engine.components import open_dataset
    from segkit.engine.pipeline_settings import pipeline_settings
    from segkit.plugins import get_registry
    from segkit.project import load_project

    for overrides, weighted in (([], False), (["dataset.region_class='Region'"], True)):
        project = load_project(qupath_project, overrides, get_registry())
        source = open_dataset(project, get_registry())
        assert pipeline_settings(project, True, source).with_weights is weighted
        assert pipeline_settings(project, False, source).with_weights is weighted
