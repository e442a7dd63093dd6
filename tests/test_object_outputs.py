"""What ``segkit infer`` writes per nucleus: the table, the summary row, the outlines and QuPath's GeoJSON."""

from __future__ import annotations

import csv
import gzip
import math
import sys
import uuid
from pathlib import Path
from typing import Any

import geojson
import numpy as np
import pytest
import shapely
from skimage.color import rgb2hed
from skimage.measure import label, regionprops_table

from segkit.classes import ClassInfo, ClassTable
from segkit.durable import replace_atomically
from segkit.objects.geojson_out import measurements, write_detections
from segkit.objects.measure import (
    nucleus_columns,
    nucleus_table,
    summary_row,
    write_summary,
    write_table,
)
from segkit.objects.outlines import object_outlines, row_runs
from segkit.specs import Instances
from segkit_process import block_imports, output_of, run_python
from segkit_synthetic.he_tiles import TileSettings, generate_tile_with_instances

CLASSES = ClassTable((ClassInfo("background", (0, 0, 0)), ClassInfo("benign", (0, 255, 0)),
                      ClassInfo("malignant", (255, 0, 0))))


def synthetic_instances(seed: int = 5, size: int = 64) -> tuple[np.ndarray, Instances]:
    """A synthetic-he tile and its exact nuclei, each with its mask's class and a made-up probability."""
    image, mask, labels = generate_tile_with_instances(seed, TileSettings(size=size))
    indices, _ = CLASSES.decode(mask)
    count = int(labels.max())
    classes = np.array([np.bincount(indices[labels == i]).argmax() for i in range(1, count + 1)])
    probabilities = np.linspace(0.5, 0.99, count).astype(np.float32)
    return image, Instances(labels.astype(np.int32), classes, probabilities)


def no_instances(size: int = 16) -> Instances:
    return Instances(np.zeros((size, size), np.int32), np.zeros(0, np.int64), np.zeros(0, np.float32))


# --- the nucleus table -------------------------------------------------------------------------


def test_table_is_regionprops_of_the_same_labels_with_centroids_on_pixel_edges() -> None:
    image, instances = synthetic_instances()
    rows = nucleus_table("tile", image, instances, CLASSES, None)
    expected = regionprops_table(instances.labels, properties=["label", "centroid", "area", "perimeter",
                                                               "eccentricity", "solidity", "axis_major_length",
                                                               "axis_minor_length"])
    assert instances.count >= 5 and [row["id"] for row in rows] == list(range(1, instances.count + 1))
    assert list(rows[0]) == nucleus_columns(None)
    column = {name: np.array([row[name] for row in rows]) for name in rows[0]}
    np.testing.assert_array_equal(column["area_px"], expected["area"])
    np.testing.assert_allclose(column["centroid_x_px"], expected["centroid-1"] + 0.5, rtol=0, atol=1e-12)
    np.testing.assert_allclose(column["centroid_y_px"], expected["centroid-0"] + 0.5, rtol=0, atol=1e-12)
    np.testing.assert_allclose(column["perimeter_px"], expected["perimeter"], rtol=1e-12)
    for mine, theirs in (("eccentricity", "eccentricity"), ("solidity", "solidity"),
                         ("major_axis_length_px", "axis_major_length"), ("minor_axis_length_px", "axis_minor_length")):
        np.testing.assert_allclose(column[mine], expected[theirs], rtol=1e-12)
    hematoxylin = rgb2hed(image)[..., 0]
    np.testing.assert_allclose(column["mean_hematoxylin_od"],
                               [hematoxylin[instances.labels == i].mean() for i in range(1, instances.count + 1)],
                               rtol=1e-9)
    assert list(column["class"]) == [CLASSES.names[c] for c in instances.classes]
    np.testing.assert_array_equal(column["class_probability"], instances.probabilities.astype(np.float64))
    assert set(column["image"]) == {"tile"}
    assert len({uuid.UUID(text, version=4) for text in column["uuid"]}) == instances.count


@pytest.mark.parametrize("seed", range(4))
def test_moment_figures_equal_regionprops_on_random_labels(seed: int) -> None:
    """Dots, lines, rings and blobs: the cases where eccentricity and the axes are 0 or degenerate."""
    rng = np.random.default_rng(seed)
    labels = label(rng.random((40, 50)) < 0.35 + 0.05 * seed, connectivity=1).astype(np.int32)
    count = int(labels.max())
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    rows = nucleus_table("noise", image, Instances(labels, np.ones(count, np.int64), np.ones(count, np.float32)),
                         CLASSES, None)
    expected = regionprops_table(labels, rgb2hed(image)[..., 0], properties=[
        "centroid", "area", "perimeter", "eccentricity", "solidity", "axis_major_length", "axis_minor_length",
        "intensity_mean"])
    for mine, theirs, tolerance in (("area_px", "area", 0), ("perimeter_px", "perimeter", 1e-12),
                                    ("solidity", "solidity", 1e-12), ("eccentricity", "eccentricity", 1e-7),
                                    ("major_axis_length_px", "axis_major_length", 1e-9),
                                    ("minor_axis_length_px", "axis_minor_length", 1e-9),
                                    ("mean_hematoxylin_od", "intensity_mean", 1e-12)):
        np.testing.assert_allclose([row[mine] for row in rows], expected[theirs], rtol=0, atol=tolerance, err_msg=mine)
    np.testing.assert_allclose([row["centroid_y_px"] - 0.5 for row in rows], expected["centroid-0"], atol=1e-12)
    assert count > 20


def test_a_one_pixel_nucleus_is_centred_in_its_pixel_as_qupath_counts() -> None:
    labels = np.zeros((6, 9), np.int32)
    labels[2, 5] = 1
    instances = Instances(labels, np.array([2]), np.array([0.75], np.float32))
    [row] = nucleus_table("dot", np.full((6, 9, 3), 200, np.uint8), instances, CLASSES, None)
    assert (row["centroid_x_px"], row["centroid_y_px"], row["area_px"], row["class"]) == (5.5, 2.5, 1.0, "malignant")


def test_microns_scale_lengths_by_the_pixel_size_and_areas_by_its_square() -> None:
    image, instances = synthetic_instances(seed=9)
    pixels = nucleus_table("tile", image, instances, CLASSES, None)
    microns = nucleus_table("tile", image, instances, CLASSES, 0.25)
    assert list(microns[0]) == ["image", "id", "uuid", "class", "class_probability", "centroid_x_px", "centroid_y_px",
                                "area_um2", "perimeter_um", "major_axis_length_um", "minor_axis_length_um",
                                "centroid_x_um", "centroid_y_um", "eccentricity", "solidity", "mean_hematoxylin_od"]
    assert not any(name.endswith("_px") and name not in ("centroid_x_px", "centroid_y_px") for name in microns[0])
    for px, um in zip(pixels, microns):
        assert um["area_um2"] == pytest.approx(px["area_px"] * 0.0625, rel=1e-12)
        assert um["perimeter_um"] == pytest.approx(px["perimeter_px"] * 0.25, rel=1e-12)
        assert um["major_axis_length_um"] == pytest.approx(px["major_axis_length_px"] * 0.25, rel=1e-12)
        assert (um["centroid_x_um"], um["centroid_y_um"]) == pytest.approx(
            (px["centroid_x_px"] * 0.25, px["centroid_y_px"] * 0.25), rel=1e-12)
        assert (um["eccentricity"], um["solidity"]) == (px["eccentricity"], px["solidity"])


def test_a_grayscale_image_has_no_haematoxylin_figure() -> None:
    image, instances = synthetic_instances()
    rows = nucleus_table("grey", image[..., :1], instances, CLASSES, None)
    assert len(rows) == instances.count and all(math.isnan(row["mean_hematoxylin_od"]) for row in rows)


def test_labels_that_are_not_one_to_n_or_not_the_image_size_are_refused() -> None:
    labels = np.zeros((8, 8), np.int32)
    labels[1, 1], labels[5, 5] = 1, 3
    instances = Instances(labels, np.array([1, 1]), np.ones(2, np.float32))
    with pytest.raises(ValueError, match=r"instance labels must be 1\.\.2"):
        nucleus_table("gap", np.zeros((8, 8, 3), np.uint8), instances, CLASSES, None)
    with pytest.raises(ValueError, match=r"image of \(8, 9\) pixels for instance labels of \(8, 8\)"):
        nucleus_table("wide", np.zeros((8, 9, 3), np.uint8), instances, CLASSES, None)


# --- writing tables ----------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_table_csv_and_parquet_hold_the_same_rows(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    image, instances = synthetic_instances()
    rows = nucleus_table("tile", image, instances, CLASSES, 0.5)
    written = write_table(tmp_path / "tile_nuclei", rows, nucleus_columns(0.5))
    assert written == [tmp_path / "tile_nuclei.csv", tmp_path / "tile_nuclei.parquet"]
    from_csv = read_csv(written[0])
    assert [row["uuid"] for row in from_csv] == [row["uuid"] for row in rows]
    assert [float(row["area_um2"]) for row in from_csv] == [row["area_um2"] for row in rows]
    parquet = pq.read_table(written[1])
    assert parquet.column_names == nucleus_columns(0.5)
    assert parquet.to_pylist() == rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tile_nuclei.csv", "tile_nuclei.parquet"]


def test_without_pyarrow_only_the_csv_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    image, instances = synthetic_instances()
    rows = nucleus_table("tile", image, instances, CLASSES, None)
    assert write_table(tmp_path / "t", rows, nucleus_columns(None)) == [tmp_path / "t.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]
    assert len(read_csv(tmp_path / "t.csv")) == instances.count


def test_an_image_without_nuclei_gives_a_header_only_table(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    rows = nucleus_table("empty", np.zeros((16, 16, 3), np.uint8), no_instances(), CLASSES, None)
    assert rows == []
    csv_path, parquet_path = write_table(tmp_path / "empty", rows, nucleus_columns(None))
    assert csv_path.read_text(encoding="utf-8") == ",".join(nucleus_columns(None)) + "\n"
    schema = pq.read_table(parquet_path).schema
    assert pq.read_table(parquet_path).num_rows == 0
    assert (str(schema.field("uuid").type), str(schema.field("id").type), str(schema.field("area_px").type)) == (
        "string", "int64", "double")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "summary.csv"
    target.write_text("old\n", encoding="utf-8")

    def half_then_fail(temporary: Path) -> None:
        temporary.write_text("half", encoding="utf-8")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_atomically(target, half_then_fail)
    assert target.read_text(encoding="utf-8") == "old\n" and [p.name for p in tmp_path.iterdir()] == ["summary.csv"]


# --- the summary -------------------------------------------------------------------------------


def test_summary_counts_each_class_its_share_and_the_density(tmp_path: Path) -> None:
    labels = np.zeros((100, 200), np.int32)
    labels[0, :4] = [1, 2, 3, 4]
    instances = Instances(labels, np.array([2, 1, 2, 2]), np.ones(4, np.float32))
    pixels = summary_row("a", instances, CLASSES, (100, 200, 3), None)
    assert pixels == {"image": "a", "nuclei": 4, "count_benign": 1, "count_malignant": 3, "fraction_benign": 0.25,
                      "fraction_malignant": 0.75, "area_megapixels": 0.02, "nuclei_per_megapixel": 200.0}
    microns = summary_row("a", instances, CLASSES, (100, 200, 3), 0.5)
    assert microns["area_mm2"] == pytest.approx(0.005) and microns["nuclei_per_mm2"] == pytest.approx(800.0)
    assert "area_megapixels" not in microns
    empty = summary_row("b", no_instances(10), CLASSES, (10, 10), None)
    assert (empty["nuclei"], empty["count_malignant"], empty["nuclei_per_megapixel"]) == (0, 0, 0.0)
    assert math.isnan(empty["fraction_malignant"])
    write_summary(tmp_path / "summary.csv", [pixels, empty])
    assert (tmp_path / "summary.csv").read_text(encoding="utf-8").splitlines() == [
        "image,nuclei,count_benign,count_malignant,fraction_benign,fraction_malignant,area_megapixels,"
        "nuclei_per_megapixel", "a,4,1,3,0.25,0.75,0.02,200.0", "b,0,0,0,nan,nan,0.0001,0.0"]


# --- outlines ----------------------------------------------------------------------------------


def reference_union(labels: np.ndarray, number: int) -> Any:
    """The brief's definition: the union of the object's row runs as pixel-edge boxes."""
    run_labels, rows, starts, stops = row_runs(labels)
    mine = run_labels == number
    return shapely.union_all(shapely.box(starts[mine], rows[mine], stops[mine], rows[mine] + 1))


def assert_covers_exactly(outline: Any, labels: np.ndarray, number: int) -> None:
    """The outline of object ``number`` is valid, as large as the object, holds its pixel centres and
    no other pixel's, and is the union of its run boxes."""
    assert shapely.is_valid(outline), (number, shapely.is_valid_reason(outline))
    assert outline.area == np.count_nonzero(labels == number)
    rows, cols = np.mgrid[0:labels.shape[0], 0:labels.shape[1]]
    inside = shapely.contains_xy(outline, cols.ravel() + 0.5, rows.ravel() + 0.5).reshape(labels.shape)
    np.testing.assert_array_equal(inside, labels == number)
    assert shapely.equals(outline, reference_union(labels, number))


def assert_exact_outlines(labels: np.ndarray) -> list[Any]:
    outlines = object_outlines(labels, int(labels.max()))
    for number, outline in enumerate(outlines, start=1):
        assert_covers_exactly(outline, labels, number)
    return outlines


@pytest.mark.parametrize("seed", range(6))
def test_outlines_of_random_labels_cover_exactly_their_pixels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(5, 24)), int(rng.integers(5, 24)))
    if seed % 2:  # ids scattered at random: holes, diagonal touches, objects in pieces
        labels = np.unique(rng.integers(0, 7, shape), return_inverse=True)[1].reshape(shape).astype(np.int32)
    else:
        labels = label(rng.random(shape) < 0.55, connectivity=1 + seed % 4 // 2).astype(np.int32)
    assert_exact_outlines(labels)


def test_outlines_of_synthetic_nuclei_touching_and_not() -> None:
    _, instances = synthetic_instances(seed=11, size=96)
    outlines = assert_exact_outlines(instances.labels)
    assert len(outlines) == instances.count and instances.count > 10


def ring_island_pair() -> np.ndarray:
    labels = np.zeros((7, 9), np.int32)
    labels[1:6, 1:6] = 1
    labels[2:5, 2:5] = 0  # the hole
    labels[3, 3] = 2  # an island inside the hole, its own object
    labels[0, 7], labels[1, 8] = 3, 3  # two pixels meeting at a corner
    return labels


def test_a_ring_keeps_its_hole_and_a_diagonal_pair_is_a_multipolygon() -> None:
    ring, island, pair = assert_exact_outlines(ring_island_pair())
    assert ring.geom_type == "Polygon" and len(ring.interiors) == 1 and shapely.area(shapely.Polygon(ring.interiors[0])) == 9
    assert island.geom_type == "Polygon" and island.area == 1
    assert pair.geom_type == "MultiPolygon" and len(pair.geoms) == 2


def test_outlines_keep_only_corners() -> None:
    labels = np.zeros((6, 6), np.int32)
    labels[1:5, 1:3] = 1  # a 2x4 bar: four rows of equal runs
    labels[4, 3:5] = 1  # an L foot
    [outline] = assert_exact_outlines(labels)
    corners = {(1, 1), (3, 1), (3, 4), (5, 4), (5, 5), (1, 5)}
    assert set(outline.exterior.coords) == corners and len(outline.exterior.coords) == 7  # closed ring
    # RFC 7946's winding: counter-clockwise in the coordinates (clockwise on screen, where y points down)
    assert shapely.is_ccw(outline.exterior)
    assert shapely.area(outline) == 10


def test_outlines_refuse_a_missing_id() -> None:
    labels = np.zeros((4, 4), np.int32)
    labels[0, 0], labels[2, 2] = 1, 3
    with pytest.raises(ValueError, match=r"object 2 of 1\.\.3 has no pixels"):
        object_outlines(labels, 3)
    assert object_outlines(np.zeros((4, 4), np.int32), 0) == []


# --- QuPath GeoJSON ----------------------------------------------------------------------------
# The layout checked here is what QuPath reads, in qupath/qupath (commit e7662d8, 2026-08-07),
# qupath-core/src/main/java/qupath/lib/io/:
# - QuPathTypeAdapters.java, PathObjectTypeAdapter.write lines 336-338 (feature "id" = the UUID),
#   356-360 ("objectType", "detection" for PathDetectionObject), 377-381 ("classification"),
#   417-420 ("measurements"); parseObject lines 466-480 (the id read back with UUID.fromString),
#   517-533 (classification, measurements as an object, objectType); MeasurementListTypeAdapter
#   lines 638-655 (a name -> number object, NaN written as the string "NaN") and 686-699 (read back).
# - GsonTools.java, PathClassTypeAdapter lines 446-530: writes {"name", "color": [r, g, b]}, and
#   reads that object form only when both "name" and "color" are present.


def write_and_read(path: Path, instances: Instances, rows: list[dict[str, Any]], compress: bool) -> Any:
    assert write_detections(path, instances, CLASSES, rows, compress) == instances.count
    opened = gzip.open(path, "rt", encoding="utf-8") if compress else path.open(encoding="utf-8")
    with opened as handle:
        text = handle.read()
    return text, geojson.loads(text)


@pytest.mark.parametrize("compress", [False, True])
def test_detections_are_qupath_features_with_the_table_ids(tmp_path: Path, compress: bool) -> None:
    image, instances = synthetic_instances()
    rows = nucleus_table("tile", image, instances, CLASSES, None)
    path = tmp_path / ("tile.geojson.gz" if compress else "tile.geojson")
    text, collection = write_and_read(path, instances, rows, compress)
    assert collection.is_valid and collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert [feature["id"] for feature in features] == [row["uuid"] for row in rows]
    assert len(text.splitlines()) == instances.count + 2  # one feature a line: written one at a time
    for number, (feature, row) in enumerate(zip(features, rows), start=1):
        properties = feature["properties"]
        assert set(properties) == {"objectType", "classification", "measurements"}
        assert properties["objectType"] == "detection"
        info = CLASSES.classes[int(instances.classes[number - 1])]
        assert properties["classification"] == {"name": info.name, "color": list(info.color)}
        assert properties["measurements"] == {name: float(value) for name, value in row.items()
                                              if name not in ("image", "uuid", "class")}
        assert_covers_exactly(shapely.geometry.shape(feature["geometry"]), instances.labels, number)
    if compress:
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_holes_and_pieces_survive_the_geojson(tmp_path: Path) -> None:
    labels = ring_island_pair()
    instances = Instances(labels, np.array([1, 2, 2]), np.ones(3, np.float32))
    rows = nucleus_table("ring", np.full((*labels.shape, 3), 180, np.uint8), instances, CLASSES, None)
    _, collection = write_and_read(tmp_path / "ring.geojson", instances, rows, False)
    assert collection.is_valid
    assert [f["geometry"]["type"] for f in collection["features"]] == ["Polygon", "Polygon", "MultiPolygon"]
    assert len(collection["features"][0]["geometry"]["coordinates"]) == 2  # shell and hole
    for number, feature in enumerate(collection["features"], start=1):
        assert_covers_exactly(shapely.geometry.shape(feature["geometry"]), labels, number)


def test_an_image_without_nuclei_gives_an_empty_feature_collection(tmp_path: Path) -> None:
    for compress, name in ((False, "none.geojson"), (True, "none.geojson.gz")):
        _, collection = write_and_read(tmp_path / name, no_instances(), [], compress)
        assert collection.is_valid and collection == {"type": "FeatureCollection", "features": []}


def test_a_missing_measurement_is_nan_as_qupath_writes_it() -> None:
    assert measurements({"image": "a", "uuid": "u", "class": "benign", "id": 3, "area_px": 12.0,
                         "mean_hematoxylin_od": math.nan, "solidity": np.float32(0.5)}) == {
        "id": 3.0, "area_px": 12.0, "mean_hematoxylin_od": "NaN", "solidity": 0.5}


def test_detections_refuse_a_suffix_that_belies_compression_or_a_foreign_table(tmp_path: Path) -> None:
    image, instances = synthetic_instances()
    rows = nucleus_table("tile", image, instances, CLASSES, None)
    with pytest.raises(ValueError, match=r"tile.geojson: a compressed GeoJSON file ends \.geojson\.gz"):
        write_detections(tmp_path / "tile.geojson", instances, CLASSES, rows, True)
    with pytest.raises(ValueError, match=r"a plain GeoJSON file ends \.geojson"):
        write_detections(tmp_path / "tile.geojson.gz", instances, CLASSES, rows, False)
    with pytest.raises(ValueError, match=f"{instances.count - 1} table rows for {instances.count} objects"):
        write_detections(tmp_path / "tile.geojson", instances, CLASSES, rows[:-1], False)
    assert list(tmp_path.iterdir()) == []


def test_importing_the_writers_loads_none_of_their_heavy_libraries() -> None:
    heavy = ["skimage", "shapely", "geojson", "pyarrow", "tifffile", "tensorflow", "keras"]
    script = block_imports(heavy) + "import segkit.objects.measure, segkit.objects.outlines, segkit.objects.geojson_out\n"
    result = run_python(script + "print('imported')")
    assert result.returncode == 0 and result.stdout.strip() == "imported", output_of(result)
