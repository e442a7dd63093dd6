"""The nuclei of a slide (segkit/engine/slide_nuclei.py): once each across tile and window seams, as the
instancer finds them on the whole picture, in level-0 coordinates, streamed to QuPath GeoJSON and a table."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import geojson
import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely
from skimage.draw import disk

from segkit.engine import slide_infer
from segkit.engine.slide_infer import SlideResult, segment_slide
from segkit.engine.slide_nuclei import NucleusPlan, NucleusSink, window_sides
from segkit.objects.classify import checked_instances
from segkit.objects.measure import nucleus_table
from segkit.plugins import get_registry
from segkit.project import Project, load_project
from segkit_objects.components import ComponentsInstancer
from segkit_objects.watershed import WatershedInstancer
from slide_files import write_pyramid
from test_slide_infer import SLIDES, save_colour_model
from tiny_data import tiny_project, write_tiny_project

#: the colour model's classes here: pink stroma is the background, purple and dark nuclei the two classes
MEANS = np.array([(230, 170, 200), (120, 60, 160), (60, 20, 110)], np.float32) / 255
PINK, PURPLE, DARK = ((230, 170, 200), (120, 60, 160), (60, 20, 110))
#: disc centres (row, column) in units of the level read: on the windows' seams (strips of 128 rows,
#: chunks of 256 columns), on the tiles' core seams (rows and columns 56, 104, 152, 200, 248, 296) and
#: on both; the .5 ones have their centroid exactly on a seam (pixel edges 128 and 256)
SEAM_CENTRES = [(128, 100), (127.5, 255.5), (56, 256), (200, 152), (248, 200), (128, 330), (90, 256),
                (104, 56), (152, 296), (127.5, 40), (250, 255.5), (296, 104)]


def seam_picture(scale: int) -> np.ndarray:
    """A 384x320 picture of pink tissue framed by glass with the discs of :data:`SEAM_CENTRES`, each
    pixel repeated ``scale`` x ``scale`` times (so that the pyramid's level 1 of ``scale`` 2 is the
    picture of ``scale`` 1 exactly: averaging would ring a dark disc with a purple edge)."""
    picture = np.full((320, 384, 3), 255, np.uint8)
    picture[24:-24, 24:-24] = PINK
    for number, centre in enumerate(SEAM_CENTRES):
        picture[disk(centre, 6, shape=picture.shape[:2])] = PURPLE if number % 2 else DARK
    return np.repeat(np.repeat(picture, scale, axis=0), scale, axis=1)


def nuclei_project(folder: Path, microns_per_pixel: float, compress: bool = False) -> Project:
    model = dict(tiny_project()["model"], microns_per_pixel=microns_per_pixel)
    path = write_tiny_project(folder, model=model, slides=SLIDES,
                              instances={"name": "connected-components", "min_area": 1,
                                         "compress_geojson": compress})
    save_colour_model(folder / "run" / "models" / "best_model.keras", MEANS)
    return load_project(path)


class WholeLevel:
    """A test sink: every row it takes, into arrays the size of the level (what one window would see)."""

    def __init__(self, width: int, height: int, classes: int) -> None:
        self.softmax = np.zeros((height, width, classes), np.float32)
        self.pixels = np.zeros((height, width, 3), np.uint8)

    def take(self, top: int, softmax: np.ndarray, pixels: np.ndarray) -> None:
        self.softmax[top:top + len(softmax)], self.pixels[top:top + len(pixels)] = softmax, pixels

    def finish(self) -> None:
        self.softmax[..., 0][self.softmax.max(axis=-1) == 0] = 1.0  # glass is background, as NucleusSink sees it

    def save_state(self, folder: Path) -> None:
        pass

    def load_state(self, folder: Path) -> None:
        pass


def segmented_with_whole_level(project: Project, slide: Path, out: Path, monkeypatch: pytest.MonkeyPatch
                               ) -> tuple[SlideResult, WholeLevel]:
    """segment_slide's result, and the blended softmax of its whole level, recorded beside its sinks."""
    recorded: list[WholeLevel] = []
    real = slide_infer._predict_into

    def recording(canvas: Any, setup: Any, predict: Any, batch_size: int, classes: int, progress: Any = None,
                  sinks: Any = (), checkpoints: Any = None) -> None:
        recorded.append(WholeLevel(*setup.slide.level_dimensions[setup.level], classes))
        real(canvas, setup, predict, batch_size, classes, progress, (*sinks, recorded[-1]), None)

    monkeypatch.setattr(slide_infer, "_predict_into", recording)
    out.mkdir()
    result = segment_slide(project, slide, out, get_registry())
    return result, recorded[0]


def features_of(path: Path) -> list[Any]:
    text = gzip.decompress(path.read_bytes()).decode() if path.name.endswith(".gz") else path.read_text()
    collection = geojson.loads(text)
    assert collection.is_valid and collection["type"] == "FeatureCollection"
    return list(collection["features"])


def whole_picture_nuclei(level: WholeLevel, project: Project, downsample: float, mpp: float
                         ) -> list[dict[str, Any]]:
    instancer = ComponentsInstancer(min_area=1)
    found = checked_instances(instancer(level.softmax, level.pixels), level.softmax.shape, "components", "whole")
    return nucleus_table("whole", level.pixels, found, project.classes, mpp, downsample=downsample)


def assert_same_nuclei(rows: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """The same nuclei (class, centroid, area, shape), in whatever order."""
    def key(row: dict[str, Any]) -> tuple[float, float]:
        return round(row["centroid_y_px"], 6), round(row["centroid_x_px"], 6)

    assert len(rows) == len(expected)
    for got, want in zip(sorted(rows, key=key), sorted(expected, key=key)):
        assert got["class"] == want["class"]
        for column in ("centroid_x_px", "centroid_y_px", "area_um2", "perimeter_um", "solidity",
                       "centroid_x_um", "mean_hematoxylin_od"):
            assert got[column] == pytest.approx(want[column], rel=1e-9, abs=1e-9), column


def assert_table_is_geojson(rows: list[dict[str, Any]], features: list[Any], downsample: float, mpp: float) -> None:
    """Row ``i`` is feature ``i``: its uuid, class and measurements; each outline valid, of the row's area."""
    assert [f["id"] for f in features] == [row["uuid"] for row in rows]
    assert sorted(row["id"] for row in rows) == list(range(1, len(rows) + 1))
    assert len({row["uuid"] for row in rows}) == len(rows)
    for row, feature in zip(rows, features):
        outline = shapely.geometry.shape(feature["geometry"])
        assert outline.is_valid and feature["properties"]["objectType"] == "detection"
        assert feature["properties"]["classification"]["name"] == row["class"]
        assert feature["properties"]["measurements"]["area_um2"] == pytest.approx(row["area_um2"])
        # level-0 pixels: a level pixel is downsample x downsample of them, each mpp / downsample µm
        assert outline.area * (mpp / downsample) ** 2 == pytest.approx(row["area_um2"])
        centre = outline.centroid
        assert (centre.x, centre.y) == pytest.approx((row["centroid_x_px"], row["centroid_y_px"]), abs=1e-6)


def test_nuclei_on_tile_and_window_seams_appear_once_as_the_whole_picture_gives_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slide = tmp_path / "seams.svs"
    write_pyramid(slide, seam_picture(1), style="aperio", microns_per_pixel=0.5, tile=64, levels=2)
    project = nuclei_project(tmp_path / "project", 0.5)
    result, level = segmented_with_whole_level(project, slide, tmp_path / "out", monkeypatch)
    assert (result.level, result.outputs.table, result.outputs.detections) == (
        0, tmp_path / "out" / "seams.nuclei.parquet", tmp_path / "out" / "seams.nuclei.geojson")
    rows = pq.read_table(result.outputs.table).to_pylist()
    assert (level.pixels[24:-24, 24:-24] == seam_picture(1)[24:-24, 24:-24]).all()  # the band's RGB is the slide's
    expected = whole_picture_nuclei(level, project, 1.0, 0.5)
    assert len(expected) == len(SEAM_CENTRES) == result.nuclei
    assert_same_nuclei(rows, expected)
    assert_table_is_geojson(rows, features_of(result.outputs.detections), 1.0, 0.5)
    assert result.nuclei_per_class == {"benign": 6, "malignant": 6}
    record = json.loads(result.outputs.record.read_text())["summary"]
    assert (record["nuclei"], record["nuclei_benign"], record["nuclei_malignant"]) == (12, 6, 6)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in result.outputs.every())


def test_a_slide_read_at_level_1_gives_level_0_coordinates_and_the_levels_micrometres(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slide = tmp_path / "coarse.svs"
    write_pyramid(slide, seam_picture(2), style="aperio", microns_per_pixel=0.5, tile=64, levels=2)
    project = nuclei_project(tmp_path / "project", 1.0, compress=True)
    result, level = segmented_with_whole_level(project, slide, tmp_path / "out", monkeypatch)
    assert (result.level, result.scale) == (1, 1.0) and result.outputs.detections.name == "coarse.nuclei.geojson.gz"
    rows = pq.read_table(result.outputs.table).to_pylist()
    expected = whole_picture_nuclei(level, project, 2.0, 1.0)
    assert len(expected) == len(SEAM_CENTRES) == result.nuclei
    assert_same_nuclei(rows, expected)
    assert_table_is_geojson(rows, features_of(result.outputs.detections), 2.0, 1.0)
    discs = np.zeros((320, 384), bool)
    discs[disk(SEAM_CENTRES[2], 6, shape=discs.shape)] = True  # (56, 256): level 1's pixels, 1 µm each
    pixels = np.argwhere(discs) + 0.5
    row = next(r for r in rows if r["centroid_x_px"] == pytest.approx(2 * pixels[:, 1].mean()))
    assert row["centroid_y_px"] == pytest.approx(2 * pixels[:, 0].mean()) and row["area_um2"] == discs.sum()


def hand_made_softmax(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A softmax of 40 random discs (each its class's 0.9) on background, zero (glass) in rows 60..140."""
    rng = np.random.default_rng(seed)
    classes = np.zeros((height, width), np.int64)
    for _ in range(40):
        centre = rng.uniform((0, 0), (height, width))
        classes[disk(tuple(centre), rng.uniform(3, 7), shape=classes.shape)] = rng.integers(1, 3)
    softmax = np.full((height, width, 3), 0.05, np.float32)
    np.put_along_axis(softmax, classes[..., None], 0.9, axis=-1)
    softmax[60:140] = 0
    return softmax, np.full((height, width, 3), 200, np.uint8)


def sink_for(folder: Path, width: int, height: int, table: str = "nuclei.parquet",
             instancer: Any = None) -> NucleusSink:
    project_classes = load_project(write_tiny_project(folder / "p")).classes
    plan = NucleusPlan(instancer or ComponentsInstancer(min_area=1), "components", project_classes, "hand.svs",
                       (width, height), 1.0, 0.5, 16, 48, 96, folder / "nuclei.geojson", folder / table, False,
                       folder / ".parts")
    return NucleusSink(plan)


def fed(sink: NucleusSink, softmax: np.ndarray, pixels: np.ndarray, rows: range, step: int = 23) -> NucleusSink:
    """Rows ``rows`` handed to ``sink`` ``step`` at a time, skipping all-glass ones as the band does."""
    for top in range(rows.start, rows.stop, step):
        bottom = min(top + step, rows.stop)
        if softmax[top:bottom].any():
            sink.take(top, softmax[top:bottom], pixels[top:bottom])
    return sink


def test_a_sink_saved_and_loaded_midway_writes_what_one_fed_everything_writes(tmp_path: Path) -> None:
    softmax, pixels = hand_made_softmax(250, 230, seed=3)
    whole = fed(sink_for(tmp_path / "whole", 230, 250), softmax, pixels, range(250))
    whole.finish()
    first = fed(sink_for(tmp_path / "resumed", 230, 250, table="nuclei.csv"), softmax, pixels, range(0, 161))
    first.save_state(tmp_path / "state")
    assert (tmp_path / "resumed" / ".parts").is_dir()
    resumed = sink_for(tmp_path / "resumed", 230, 250, table="nuclei.csv")
    resumed.load_state(tmp_path / "state")
    fed(resumed, softmax, pixels, range(161, 250)).finish()
    assert resumed.count == whole.count > 20 and resumed.nuclei_per_class() == whole.nuclei_per_class()
    import csv

    with (tmp_path / "resumed" / "nuclei.csv").open() as handle:
        again = list(csv.DictReader(handle))
    once = pq.read_table(tmp_path / "whole" / "nuclei.parquet").to_pylist()
    assert [(int(r["id"]), float(r["centroid_x_px"]), float(r["centroid_y_px"]), float(r["area_um2"])) for r in again] \
        == [(r["id"], r["centroid_x_px"], r["centroid_y_px"], r["area_um2"]) for r in once]
    geometries = [[f["geometry"] for f in features_of(folder / "nuclei.geojson")] for folder in
                  (tmp_path / "whole", tmp_path / "resumed")]
    assert geometries[0] == geometries[1] and not (tmp_path / "resumed" / ".parts").exists()
    instances = checked_instances(ComponentsInstancer(min_area=1)(np.where(softmax.any(-1, keepdims=True), softmax,
                                                                           np.eye(3, dtype=np.float32)[0]), pixels),
                                  softmax.shape, "components", "whole")
    assert whole.count == instances.count  # the whole picture's nuclei, each once


def test_glass_rows_give_no_nuclei_even_to_a_threshold_instancer(tmp_path: Path) -> None:
    """An all-0 softmax has p(background) 0: the watershed's foreground, unless glass is read as background.
    Rows 0..50 are tissue without nuclei, the rest glass: some handed over, rows 70..150 never."""
    softmax, pixels = hand_made_softmax(200, 150, seed=4)
    softmax[:] = 0
    softmax[:50] = (0.9, 0.05, 0.05)
    watershed = WatershedInstancer(threshold=0.5, smoothing=1.0, min_distance=3, min_area=1)
    sink = sink_for(tmp_path, 150, 200, instancer=watershed)
    sink.take(0, softmax[:70], pixels[:70])  # the band hands over glass rows a tile row touched
    sink.take(150, softmax[150:], pixels[150:])
    sink.finish()
    assert sink.count == 0 and sink.nuclei_per_class() == {"benign": 0, "malignant": 0}
    assert features_of(tmp_path / "nuclei.geojson") == []
    table = pq.read_table(tmp_path / "nuclei.parquet")
    assert table.num_rows == 0 and table.schema.field("id").type == "int64"


def test_window_sides_follow_the_model_tile() -> None:
    from segkit.slides.grid import Rect, Tile

    tile = Tile(0, 0, 0, 0, 0, 256, 256, 256, 192, Rect(0, 0, 256, 256))
    assert window_sides([tile]) == (64, 384, 1024)


def sink_peak_bytes(folder: Path, height: int) -> tuple[int, int]:
    """Peak bytes NumPy and Python allocate while a sink takes and writes a 256-wide level of
    ``height`` rows (the hand-made softmax repeated down it), and the nuclei it wrote."""
    import tracemalloc

    softmax, pixels = hand_made_softmax(192, 256, seed=5)
    softmax[60:140] = softmax[0:80]  # no glass band: nuclei all the way down
    repeats = height // 192
    softmax, pixels = np.tile(softmax, (repeats, 1, 1)), np.tile(pixels, (repeats, 1, 1))
    sink = sink_for(folder, 256, height)
    tracemalloc.start()
    fed(sink, softmax, pixels, range(height), step=48).finish()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, sink.count


def test_the_sinks_memory_does_not_grow_with_the_slides_height_or_its_nuclei(tmp_path: Path) -> None:
    sink_peak_bytes(tmp_path / "warm-up", 192)  # the libraries' first-call allocations (imports, caches)
    (short, few), (tall, many) = sink_peak_bytes(tmp_path / "short", 384), sink_peak_bytes(tmp_path / "tall", 960)
    assert many > 2 * few > 0
    assert tall <= 1.1 * short, (short, tall)
    assert tall < 960 * 256 * (3 * 4 + 3) / 2  # not the level's softmax and RGB


def test_nuclei_already_there_are_one_line_and_nothing_is_replaced(tmp_path: Path) -> None:
    from segkit.errors import DataError

    slide = tmp_path / "seams.svs"
    write_pyramid(slide, seam_picture(1), style="aperio", microns_per_pixel=0.5, tile=64, levels=2)
    project = nuclei_project(tmp_path / "project", 0.5)
    out = tmp_path / "out"
    out.mkdir()
    earlier = out / "seams.nuclei.parquet"
    earlier.write_bytes(b"a table of before")
    with pytest.raises(DataError) as caught:
        segment_slide(project, slide, out, get_registry())
    assert str(caught.value) == f"{earlier}: already exists (move it, choose another output folder, or overwrite it)"
    assert sorted(out.iterdir()) == [earlier] and earlier.read_bytes() == b"a table of before"


def test_a_window_grows_for_objects_wider_than_its_margin_and_cuts_only_those_wider_than_growth_allows(
        tmp_path: Path) -> None:
    """Margin 16, strips of 48 rows, chunks of 96 columns. A 50-pixel bar across the chunk seam at
    column 96 and a 40-pixel upright bar across the strip seam at row 48 are cut by the first windows
    that see them, which grow to 32-pixel margins: each is written once, whole. A 170-pixel bar (a clump
    connected components keeps as one) is wider than that: the pieces whose centroid their window owns
    are kept, and ``cut`` counts them."""
    softmax = np.full((100, 230, 3), (0.9, 0.05, 0.05), np.float32)
    softmax[20:25, 30:200] = (0.05, 0.9, 0.05)
    softmax[80:85, 70:120] = (0.05, 0.9, 0.05)
    softmax[30:70, 10:15] = (0.05, 0.9, 0.05)
    softmax[60:66, 100:110] = (0.05, 0.05, 0.9)  # a nucleus on the seam at column 96, inside the margin
    sink = fed(sink_for(tmp_path, 230, 100), softmax, np.full((100, 230, 3), 200, np.uint8), range(100))
    sink.finish()
    rows = pq.read_table(tmp_path / "nuclei.parquet").to_pylist()
    assert [(r["class"], r["area_um2"] / 0.25) for r in rows] == [
        ("benign", 5 * (128 - 30)), ("benign", 5 * (200 - 64)), ("benign", 5 * 40), ("benign", 5 * 50),
        ("malignant", 60)]
    assert (rows[2]["centroid_x_px"], rows[2]["centroid_y_px"]) == (12.5, 50.0)
    assert (rows[3]["centroid_x_px"], rows[3]["centroid_y_px"]) == (95.0, 82.5)
    assert sink.cut == 2


def test_without_pyarrow_the_table_is_csv_with_the_same_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import csv

    slide = tmp_path / "seams.svs"
    write_pyramid(slide, seam_picture(1), style="aperio", microns_per_pixel=0.5, tile=64, levels=2)
    project = nuclei_project(tmp_path / "project", 0.5)
    monkeypatch.setattr(slide_infer, "parquet_available", lambda: False)
    out = tmp_path / "out"
    out.mkdir()
    result = segment_slide(project, slide, out, get_registry())
    assert result.outputs.table == out / "seams.nuclei.csv"
    with result.outputs.table.open(newline="") as handle:
        rows = [{k: (v if k in ("image", "uuid", "class") else float(v)) for k, v in row.items()}
                for row in csv.DictReader(handle)]
    assert len(rows) == result.nuclei == len(SEAM_CENTRES) and rows[0]["image"] == "seams.svs"
    assert_table_is_geojson(rows, features_of(result.outputs.detections), 1.0, 0.5)
