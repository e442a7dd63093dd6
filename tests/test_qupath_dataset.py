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
