"""``segkit infer`` with ``[instances]``: per image an instance label TIFF, a nucleus table and QuPath
detections in ``<out>_objects/``, one summary for the call; planned and checked before anything is written."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import geojson
import numpy as np
import pytest
import tifffile
from PIL import Image

from segkit import toml_io
from segkit.objects.labels import truth_objects
from segkit.objects.measure import nucleus_columns
from segkit.data.images import read_image
from segkit.errors import PluginError, ProjectError
from segkit.options import Option
from segkit.plugins import PluginInfo, get_registry
from segkit.project import load_project
from segkit.specs import InstancerRequest, InstancerSpec, Instances
from cli_results import invoke, single_error_line, snapshot
from tiny_data import COLOURS, HEADER, write_tiny_project

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "segkit-plugin-example"
CLASS_NAMES = ("background", "benign", "malignant")
#: the tables' Parquet copy, written where pyarrow is installed
PARQUET = (".parquet",) if importlib.util.find_spec("pyarrow") else ()


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def header_of(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


def features_of(path: Path) -> list[dict[str, Any]]:
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text(encoding="utf-8")
    collection = geojson.loads(text)
    assert collection["type"] == "FeatureCollection" and collection.is_valid, collection.errors()
    return list(collection["features"])


def mask_classes(path: Path) -> np.ndarray:
    """The class indices of a colourised mask PNG (the tiny project's colours)."""
    pixels = np.asarray(Image.open(path).convert("RGB"))
    indices = np.full(pixels.shape[:2], -1)
    for index, colour in COLOURS.items():
        indices[(pixels == colour).all(axis=2)] = index
    assert (indices >= 0).all()
    return indices


def save_colour_model(path: Path) -> None:
    """A model whose softmax is known, saved over a run's best model: each pixel's class is the
    nearest of the tiny images' three colours (a 1x1 convolution with set weights, a Gaussian of
    sigma 0.05 around each). The one-epoch model paints every pixel background, which would leave
    the object checks nothing to hold on; with this one the objects are the images' discs."""
    import keras

    means = np.array([(230, 170, 200), (120, 60, 160), (60, 20, 110)], np.float32) / 255
    sharpness = 1 / (2 * 0.05**2)  # -|x - mean|^2 / 2 sigma^2, less the |x|^2 all classes share
    model = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Conv2D(3, 1, activation="softmax")])
    model.layers[0].set_weights([2 * sharpness * means.T[None, None], -sharpness * (means**2).sum(axis=1)])
    model.save(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny project with ``[instances]`` (connected components), trained for one epoch, its
    best model then replaced by :func:`save_colour_model`'s."""
    folder = tmp_path_factory.mktemp("objects")
    project = write_tiny_project(folder, epochs=1, instances={"name": "connected-components", "min_area": 1})
    result = invoke("train", project, "--quiet")
    assert result.exit_code == 0, result.output
    save_colour_model(folder / "run" / "models" / "best_model.keras")
    return project


@pytest.fixture
def images(trained: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    shutil.copytree(trained.parent / "data" / "test" / "images", folder)
    return folder


def without_instances(project: Path) -> Path:
    """The same project and run, without its ``[instances]`` table."""
    document = toml_io.loads(project.read_text(encoding="utf-8"))
    del document["instances"]
    plain = project.with_name("plain.toml")
    plain.write_text(HEADER + toml_io.dumps(document), encoding="utf-8")
    return plain


def test_each_image_gets_labels_a_table_and_detections_that_agree(trained: Path, images: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "masks"
    result = invoke("infer", trained, images, "--out", out)
    assert result.exit_code == 0, result.output
    objects = tmp_path / "masks_objects"
    stems = sorted(p.stem for p in images.iterdir())
    summary = rows_of(objects / "summary.csv")
    assert [row["image"] for row in summary] == [f"{stem}.png" for stem in stems]
    total = 0
    for stem, summary_row in zip(stems, summary):
        labels = tifffile.imread(objects / f"{stem}.tif")
        table = rows_of(objects / f"{stem}.csv")
        features = features_of(objects / f"{stem}.geojson")
        ids = [int(row["id"]) for row in table]
        assert labels.shape == (64, 64) and sorted(np.unique(labels[labels > 0]).tolist()) == ids == \
            list(range(1, len(ids) + 1))
        assert len(features) == len(table)
        # connected components of the argmax: every nucleus lies on mask pixels of its own class
        mask = mask_classes(out / f"{stem}.png")
        for row in table:
            assert {CLASS_NAMES[c] for c in np.unique(mask[labels == int(row["id"])])} == {row["class"]}
            assert float(row["area_px"]) == np.count_nonzero(labels == int(row["id"]))
        assert (mask > 0).sum() == (labels > 0).sum()  # min_area 1: every foreground pixel is in a nucleus
        # the colour model segments the discs exactly: the nuclei are the true mask's components
        truth, truth_classes = truth_objects(mask_classes(trained.parent / "data" / "test" / "masks" / f"{stem}.png").astype(np.uint8), None, 3)
        assert sorted(CLASS_NAMES[c] for c in truth_classes) == sorted(row["class"] for row in table)
        assert ((truth > 0) == (labels > 0)).all()
        assert int(summary_row["nuclei"]) == len(table)
        for name in ("benign", "malignant"):
            assert int(summary_row[f"count_{name}"]) == sum(row["class"] == name for row in table)
        total += len(table)
    assert total > 0, "the one-epoch model found no nuclei: the checks above would hold vacuously"
    assert result.output.strip().endswith(f"{total} nuclei → {objects}")
    assert json.loads((objects / ".segkit-outputs.json").read_text())["written"] == sorted(
        [f"{stem}{ext}" for stem in stems for ext in (".csv", ".geojson", ".tif", *PARQUET)] + ["summary.csv"])


def test_an_image_without_nuclei_is_no_error(trained: Path, tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((50, 70, 3), (230, 170, 200), np.uint8)).save(blank)
    result = invoke("infer", trained, blank, "--out", tmp_path / "masks")
    assert result.exit_code == 0, result.output
    objects = tmp_path / "masks_objects"
    assert result.output.strip().endswith(f"0 nuclei → {objects}")
    assert not tifffile.imread(objects / "blank.tif").any() and tifffile.imread(objects / "blank.tif").shape == (50, 70)
    assert (objects / "blank.csv").read_text() == ",".join(nucleus_columns(None)) + "\n"
    assert features_of(objects / "blank.geojson") == []
    (row,) = rows_of(objects / "summary.csv")
    assert (row["image"], row["nuclei"], row["count_benign"], row["count_malignant"]) == ("blank.png", "0", "0", "0")


def test_masks_are_those_of_a_project_without_instances_which_writes_no_objects(trained: Path, images: Path,
                                                                               tmp_path: Path) -> None:
    assert invoke("infer", trained, images, "--out", tmp_path / "with").exit_code == 0
    result = invoke("infer", without_instances(trained), images, "--out", tmp_path / "without")
    assert result.exit_code == 0, result.output
    assert "nuclei" not in result.output
    assert not (tmp_path / "without_objects").exists()
    assert snapshot(tmp_path / "with") == snapshot(tmp_path / "without")
    assert snapshot(tmp_path / "with_overlay") == snapshot(tmp_path / "without_overlay")


def test_compressed_detections_and_the_watershed_instancer(trained: Path, images: Path, tmp_path: Path) -> None:
    result = invoke("infer", trained, images, "--out", tmp_path / "masks", "--set", "instances.name='watershed'",
                    "--set", "instances.compress_geojson=true")
    assert result.exit_code == 0, result.output
    objects = tmp_path / "masks_objects"
    assert not list(objects.glob("*.geojson"))
    for image in sorted(images.iterdir()):
        features = features_of(objects / f"{image.stem}.geojson.gz")
        table = rows_of(objects / f"{image.stem}.csv")
        assert [f["properties"]["classification"]["name"] for f in features] == [row["class"] for row in table]


def test_a_foreign_file_in_the_objects_folder_is_refused_and_kept(trained: Path, images: Path, tmp_path: Path) -> None:
    objects = tmp_path / "masks_objects"
    objects.mkdir()
    (objects / "img_01.csv").write_text("my own counts\n")
    line = single_error_line(invoke("infer", trained, images, "--out", tmp_path / "masks"))
    assert line == (f"error: '{objects}': objects would replace 1 file(s) segkit did not write ('img_01.csv'); "
                    "move them, choose another output folder, or pass --overwrite")
    assert snapshot(objects) == {"img_01.csv": b"my own counts\n"}
    assert not (tmp_path / "masks").exists() and not (tmp_path / "masks_overlay").exists()
    result = invoke("infer", trained, images, "--out", tmp_path / "masks", "--overwrite")
    assert result.exit_code == 0, result.output
    assert f"replaced 1 file(s) segkit had not written (--overwrite): '{objects / 'img_01.csv'}'" in result.output
    assert header_of(objects / "img_01.csv") == nucleus_columns(None)


def test_a_bad_instancer_key_is_one_line_and_nothing_is_written(trained: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "masks"
    line = single_error_line(invoke("infer", trained, images, "--out", out, "--set", "instances.name='watershed'",
                                    "--set", "instances.threshold=2"))
    assert line.startswith(f"error: {trained}: instances.threshold: ")
    assert not any(p.exists() for p in (out, tmp_path / "masks_overlay", tmp_path / "masks_objects"))


def test_an_image_named_summary_is_refused_before_anything_is_written(trained: Path, images: Path,
                                                                      tmp_path: Path) -> None:
    (images / "img_00.png").rename(images / "summary.png")
    line = single_error_line(invoke("infer", trained, images, "--out", tmp_path / "masks"))
    assert line == (f"error: '{images / 'summary.png'}': its nucleus table would be the objects folder's summary.csv "
                    "of every image; rename the image or segment it on its own into another output folder")
    assert not (tmp_path / "masks_objects").exists()


def strict_instancer(request: InstancerRequest) -> Any:
    raise ValueError(f"min_size {request.options['min_size']} exceeds max_size 1")


def test_an_instancers_value_error_is_one_line_on_instances(tmp_path: Path) -> None:
    """A rule across an instancer's keys, which only its builder can check, fails as the plan is made."""
    from segkit.engine.infer_plan import plan_objects

    registry = get_registry()
    registry.add("instancer", InstancerSpec("strict", "refuses its keys", strict_instancer,
                                            (Option("min_size", "int", 4, "smallest nucleus"),)),
                 PluginInfo("strict", "tests", "tests", "0"))
    project = load_project(write_tiny_project(tmp_path, instances={"name": "strict"}), [], registry)
    with pytest.raises(ProjectError) as caught:
        plan_objects(project, tmp_path / "objects", registry)
    assert str(caught.value) == f"{project.source}: instances: min_size 4 exceeds max_size 1"


def test_an_image_without_nuclei_gets_empty_outputs_and_a_row_of_zeros(tmp_path: Path) -> None:
    from segkit.engine.infer_objects import NucleusWriter
    from segkit.engine.infer_plan import plan_objects

    project = load_project(write_tiny_project(tmp_path, instances={"name": "watershed"}), [])
    plan = plan_objects(project, tmp_path / "objects", get_registry())
    assert plan is not None
    background = np.zeros((40, 30, 3), np.float32)
    background[..., 0] = 1
    writer = NucleusWriter(plan, project.classes)
    writer.write(Path("blank.png"), np.full((40, 30, 3), 200, np.uint8), background)
    assert writer.finish([Path("blank.png")]) == 0
    assert tifffile.imread(tmp_path / "objects" / "blank.tif").tolist() == np.zeros((40, 30), int).tolist()
    assert rows_of(tmp_path / "objects" / "blank.csv") == []
    assert header_of(tmp_path / "objects" / "blank.csv") == nucleus_columns(None)
    if plan.parquet:  # pyarrow is installed
        import pyarrow.parquet

        assert pyarrow.parquet.read_table(tmp_path / "objects" / "blank.parquet").column_names == nucleus_columns(None)
        assert pyarrow.parquet.read_table(tmp_path / "objects" / "blank.parquet").num_rows == 0
    assert features_of(tmp_path / "objects" / "blank.geojson") == []
    (row,) = rows_of(tmp_path / "objects" / "summary.csv")
    assert (row["image"], row["nuclei"], row["count_benign"], row["count_malignant"]) == ("blank.png", "0", "0", "0")


def test_an_instancer_returning_labels_of_the_wrong_size_is_named(tmp_path: Path) -> None:
    from segkit.engine.infer_objects import NucleusWriter
    from segkit.engine.infer_plan import ObjectPlan

    def sloppy(probabilities: Any, image: Any) -> Instances:
        return Instances(np.ones((8, 8), np.int32), np.array([1]), np.array([0.9], np.float32))

    project = load_project(write_tiny_project(tmp_path), [])
    writer = NucleusWriter(ObjectPlan(tmp_path / "objects", "sloppy", sloppy, None, False, False), project.classes)
    with pytest.raises(PluginError) as caught:
        writer.write(Path("a.png"), np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.float32))
    assert str(caught.value) == ("instancer 'sloppy': returned labels of shape (8, 8), not the image's (16, 16) for "
                                 "a.png (a bug in the instancer plugin; report it to its authors)")
    assert not (tmp_path / "objects").exists()


def test_a_third_party_model_plugin_gets_instances_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example plugin's model, found through its entry point as an installed one would be."""
    from segkit.engine.best_model import load_best_model
    from segkit.engine.components import build_instancer, prediction_for
    from segkit.engine.predict import probabilities

    site = tmp_path / "site"
    info = site / "segkit_plugin_example-0.3.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: segkit-plugin-example\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text("[segkit]\nexample = segkit_example_plugin\n")
    shutil.copytree(EXAMPLE / "segkit_example_plugin", site / "segkit_example_plugin")
    monkeypatch.syspath_prepend(str(site))
    get_registry.cache_clear()
    model = {"name": "res-attention-unet", "image_width": 64, "image_height": 64, "filters": 4, "depth": 3}
    project = write_tiny_project(tmp_path / "project", epochs=1, model=model, callbacks=[],
                                 instances={"name": "watershed"})
    result = invoke("train", project, "--quiet")
    assert result.exit_code == 0, result.output
    result = invoke("infer", project)
    assert result.exit_code == 0, result.output
    objects = tmp_path / "project" / "run" / "infer_objects"
    summary = rows_of(objects / "summary.csv")
    assert [row["image"] for row in summary] == ["odd_0.png", "odd_1.png", "odd_2.png"]
    # the labels are the instancer's on that model's own softmax, computed here apart from infer
    loaded = load_project(project, [])
    paths = [loaded.infer.images / row["image"] for row in summary]
    pictures = [read_image(path, 3) for path in paths]
    softmax = probabilities(load_best_model(loaded), pictures, prediction_for(loaded))
    instancer = build_instancer(loaded, get_registry())
    for row, picture, softmax_map in zip(summary, pictures, softmax):
        stem = row["image"].removesuffix(".png")
        labels = tifffile.imread(objects / f"{stem}.tif")
        assert np.array_equal(labels, instancer(softmax_map, picture).labels)
        assert int(labels.max(initial=0)) == int(row["nuclei"]) == len(rows_of(objects / f"{stem}.csv")) == len(
            features_of(objects / f"{stem}.geojson"))
    assert sum(int(row["nuclei"]) for row in summary) > 0
    resolved = toml_io.loads((tmp_path / "project" / "run" / "project.resolved.toml").read_text())
    assert resolved["model"]["name"] == "res-attention-unet"
