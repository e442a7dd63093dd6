"""``segkit export --format bioimageio``: the package bioimageio.spec validates and bioimageio.core
reproduces, offline; its declared axes and range are what its graph takes; and its refusals."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cli_results import invoke, single_error_line, snapshot, trained_tiny_project
from segkit.engine import export_bioimageio
from tiny_data import tiny_project, write_tiny_project



def _skip_outside_ci(reason: str) -> None:
    """Skip, saying why, where the bioimageio extra cannot run; CI installs `.[test]`, so there it fails."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true installs the bioimageio extra with '.[test]', yet: {reason}")
    pytest.skip(reason, allow_module_level=True)


if importlib.util.find_spec("bioimageio") is None or importlib.util.find_spec("bioimageio.core") is None:
    _skip_outside_ci("the bioimageio extra (pip install '.[test]') is not installed")
WEIGHTS = ("tensorflow_saved_model_bundle", "onnx")


@dataclass(frozen=True)
class Package:
    project: Path
    zip: Path
    output: str
    files: dict[str, bytes]
    rdf: dict[str, Any]


def _refuse_network(*_: Any, **__: Any) -> None:
    raise AssertionError("the bioimageio export or its test tried to reach the network")


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """No socket may connect; bioimageio's cache and the folder core unzips weights into are temporary."""
    work = tmp_path_factory.mktemp("bioimageio-work")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BIOIMAGEIO_CACHE_PATH", str(work / "cache"))
        patch.setattr(socket.socket, "connect", _refuse_network)
        patch.setattr(socket, "create_connection", _refuse_network)
        patch.chdir(work)  # bioimageio.core unzips SavedModel weights under the working folder
        yield work


@pytest.fixture(scope="module")
def usable() -> None:
    """Skip where bioimageio.spec cannot save a package here (the reason is the CLI's own line)."""
    try:
        export_bioimageio.require_bioimageio()
    except Exception as exc:  # noqa: BLE001 - an environment that cannot save a package says why, once
        _skip_outside_ci(str(exc))


@pytest.fixture(scope="module")
def package(usable: None, offline: Path, tmp_path_factory: pytest.TempPathFactory) -> Package:
    project = trained_tiny_project(tmp_path_factory.mktemp("bioimageio-project"))
    result = invoke("export", project, "--format", "bioimageio", "--author", "Ada Lovelace", "--license", "MIT")
    assert result.exit_code == 0, result.output
    target = project.parent / "run" / "export" / "tiny.bioimageio.zip"
    with zipfile.ZipFile(target) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    import ruyaml  # bioimageio.spec's own YAML library

    return Package(project, target, result.output, files, ruyaml.YAML(typ="safe").load(files["rdf.yaml"]))


def test_package_validates_and_bioimageio_core_reproduces_each_weights_format(package: Package, offline: Path) -> None:
    from bioimageio.core import test_model
    from bioimageio.spec import load_description

    description = load_description(package.zip)
    assert type(description).__name__ == "ModelDescr", description.validation_summary.display()
    assert description.validation_summary.status == "valid-format"  # "passed" needs the model run below
    assert sorted(package.rdf["weights"]) == sorted(WEIGHTS)
    for weights in WEIGHTS:
        summary = test_model(package.zip, weight_format=weights)
        assert summary.status == "passed", (weights, [(d.name, [e.msg for e in d.errors]) for d in summary.details])
        assert any(f"Reproduce test outputs from test inputs ({weights})" == d.name for d in summary.details)
    assert not list((offline / "cache").rglob("*.*")), "bioimageio downloaded something"


def test_declared_axes_and_range_are_what_the_graph_takes(package: Package, tmp_path: Path) -> None:
    import onnxruntime
    import tensorflow as tf

    source, result = package.rdf["inputs"][0], package.rdf["outputs"][0]
    assert [a["type"] for a in source["axes"]] == ["batch", "space", "space", "channel"]
    assert [a.get("size") for a in source["axes"][1:3]] == [64, 64]
    assert source["data"] == {"type": "uint8", "range": [0.0, 255.0]}
    assert result["data"] == {"type": "float32", "range": [0.0, 1.0]}
    assert [a["size"] for a in result["axes"][1:3]] == [{"tensor_id": "image", "axis_id": a} for a in ("y", "x")]
    assert [(p["id"], p["kwargs"]) for p in source["preprocessing"]] == [
        ("ensure_dtype", {"dtype": "float32"}), ("scale_linear", {"gain": pytest.approx(1 / 255)}),
        ("ensure_dtype", {"dtype": "float32"})]
    test_input = np.load(_file(package, "test_input.npy", tmp_path))
    expected = np.load(_file(package, "test_output.npy", tmp_path))
    assert test_input.dtype == np.uint8 and test_input.shape == (1, 64, 64, 3) and test_input.max() > 1
    assert expected.shape == (1, 64, 64, 3) and expected.dtype == np.float32
    np.testing.assert_allclose(expected.sum(-1), 1.0, atol=1e-5)  # the declared [0, 1] softmax
    with zipfile.ZipFile(_file(package, "tf_saved_model.zip", tmp_path)) as bundle:
        bundle.extractall(tmp_path / "savedmodel")
    loaded = tf.saved_model.load(str(tmp_path / "savedmodel"))
    spec = loaded.signatures["serving_default"].structured_input_signature[1]["image"]
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, 64, 64, 3]
    scaled = test_input.astype(np.float32) / 255  # the preprocessing rdf.yaml declares
    np.testing.assert_allclose(loaded.serve(tf.constant(scaled))["probabilities"].numpy(), expected, atol=1e-6)
    session = onnxruntime.InferenceSession(str(_file(package, "weights.onnx", tmp_path)))
    (onnx_input,) = session.get_inputs()
    assert onnx_input.type == "tensor(float)" and onnx_input.shape[1:] == [64, 64, 3]
    np.testing.assert_allclose(session.run(None, {onnx_input.name: scaled})[0], expected, atol=1e-4)


def test_classes_cover_and_licence_fields_come_from_the_project_and_options(package: Package, tmp_path: Path) -> None:
    classes = tiny_project()["classes"]
    segkit_config = package.rdf["config"]["segkit"]
    assert [(c["name"], c["color"]) for c in segkit_config["classes"]] == [(c["name"], c["color"]) for c in classes]
    assert package.rdf["outputs"][0]["axes"][3]["channel_names"] == [c["name"] for c in classes]
    assert segkit_config["microns_per_pixel"] is None and "scale" not in package.rdf["inputs"][0]["axes"][1]
    assert package.rdf["authors"] == [{"name": "Ada Lovelace"}] and package.rdf["license"] == "MIT"
    assert package.rdf["cite"] == []
    assert [line for line in package.output.splitlines() if line.startswith("note:")] == [
        "note: no --cite: rdf.yaml has an empty cite list (bioimage.io validation warns, it does not fail; "
        "add --cite before sharing the package)"]
    test_input = np.load(_file(package, "test_input.npy", tmp_path))[0]
    mask = np.load(_file(package, "test_output.npy", tmp_path))[0].argmax(-1)
    cover = np.asarray(Image.open(_file(package, "cover.png", tmp_path)))
    assert cover.shape == (64, 128, 3)
    np.testing.assert_array_equal(cover[:, :64], test_input)
    np.testing.assert_array_equal(cover[:, 64:], np.array([c["color"] for c in classes], np.uint8)[mask])
    readme = package.files["README.md"].decode()
    assert "## Validation" in readme and "| 2 | malignant | (255, 0, 0) |" in readme
    marker = json.loads((package.zip.parent / "tiny.bioimageio.zip.json").read_text())
    assert marker["written_by"] == "segkit export" and marker["format"] == "bioimageio"


def _file(package: Package, name: str, folder: Path) -> Path:
    path = folder / name
    path.write_bytes(package.files[name])
    return path


def test_a_file_that_is_not_a_segkit_export_is_left_alone(package: Package, tmp_path: Path) -> None:
    foreign = tmp_path / "theirs.zip"
    foreign.write_bytes(b"someone else's zip")
    line = single_error_line(invoke("export", package.project, "--format", "bioimageio", "--out", foreign))
    assert line == (f"error: {foreign}: exists and was not written by segkit export; choose another --out "
                    "or pass --overwrite to replace it")
    assert foreign.read_bytes() == b"someone else's zip"
    line = single_error_line(invoke("export", package.project, "--format", "bioimageio", "--out", tmp_path / "x.txt"))
    assert line == f"error: {tmp_path / 'x.txt'}: a bioimage.io package is a zip file; end --out in .zip"


def test_a_bad_licence_or_citation_stops_before_anything_is_written(package: Package, tmp_path: Path) -> None:
    out = tmp_path / "pkg.zip"
    line = single_error_line(invoke("export", package.project, "-f", "bioimageio", "--out", out, "--license", "nope"))
    assert line == f"error: --license 'nope': {export_bioimageio.LICENCE_FIX}"
    line = single_error_line(invoke("export", package.project, "-f", "bioimageio", "--out", out,
                                    "--cite", "a paper | not-a-doi"))
    assert line == f"error: --cite 'a paper | not-a-doi': {export_bioimageio.CITE_FIX}"
    line = single_error_line(invoke("export", package.project, "-f", "bioimageio", "--out", out, "--cite", "a paper"))
    assert line == f"error: --cite 'a paper': {export_bioimageio.CITE_FIX}"
    line = single_error_line(invoke("export", package.project, "--out", tmp_path / "sm", "--author", "Ada"))
    assert line == ("error: --author/--license/--cite: only a bioimage.io package has them "
                    "(add --format bioimageio)")
    assert snapshot(tmp_path) == {}


def test_export_before_training_is_one_line(usable: None, tmp_path: Path) -> None:
    project = write_tiny_project(tmp_path)
    line = single_error_line(invoke("export", project, "--format", "bioimageio"))
    assert "best_model.keras" in line, line
    assert not (tmp_path / "run" / "export").exists()


def test_missing_bioimageio_spec_is_one_line_with_the_pip_command(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("bioimageio") else found(name, *a))
    line = single_error_line(invoke("export", tmp_path / "absent.toml", "--format", "bioimageio"))
    assert line == f"error: {export_bioimageio.BIOIMAGEIO_MISSING}"
    assert "pip install 'segkit[bioimageio]'" in line


def test_a_bioimageio_spec_that_pydantic_breaks_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    versions = {"bioimageio.spec": "0.5.12.0", "pydantic": "2.14.4"}
    monkeypatch.setattr("importlib.metadata.version", versions.__getitem__)
    line = single_error_line(invoke("export", tmp_path / "absent.toml", "--format", "bioimageio"))
    assert line == ("error: bioimageio.spec 0.5.12.0 cannot save a package with pydantic 2.14.4 "
                    "(pip install 'pydantic<2.14', or a bioimageio.spec of 0.5.14.3 or later)")



def test_the_test_tile_is_what_the_model_was_trained_on(tmp_path: Path) -> None:
    """Resize mode: the image resized to the model size; tile mode: the centre window at full
    resolution, edge-padded where the image is smaller."""
    from segkit.project import load_project

    path = write_tiny_project(tmp_path)
    image = np.random.default_rng(3).integers(0, 256, (97, 53, 3), dtype=np.uint8)
    resized = export_bioimageio.cover_tile(load_project(path), image)
    np.testing.assert_array_equal(resized, np.asarray(Image.fromarray(image).resize((64, 64), Image.Resampling.BILINEAR)))
    cropped = load_project(path, ["augment.crop=true"])
    big = np.random.default_rng(4).integers(0, 256, (100, 120, 3), dtype=np.uint8)
    np.testing.assert_array_equal(export_bioimageio.cover_tile(cropped, big), big[18:82, 28:92])
    small = export_bioimageio.cover_tile(cropped, image)  # 97 rows: centre crop; 53 columns: edge-padded to 64
    np.testing.assert_array_equal(small[:, :53], image[16:80])
    np.testing.assert_array_equal(small[:, 53:], np.repeat(image[16:80, -1:], 11, axis=1))


def test_the_pixel_size_and_class_names_the_spec_cannot_take_as_they_are(tmp_path: Path) -> None:
    """``[instances] microns_per_pixel`` becomes the space axes' scale in µm; a class name that is
    no identifier is ``class<index>`` as a channel name and stays whole in ``config.segkit``."""
    from segkit.project import load_project

    classes = [{"name": "background", "color": [0, 0, 0]}, {"name": "tumour cells", "color": [255, 0, 0]}]
    path = write_tiny_project(tmp_path, classes=classes,
                              instances={"name": "connected-components", "microns_per_pixel": 0.25})
    project = load_project(path)
    for output in (False, True):
        axes = export_bioimageio._space_axes(project, output)
        assert [(str(a.id), a.scale, a.unit) for a in axes] == [("y", 0.25, "micrometer"), ("x", 0.25, "micrometer")]
    channels = [export_bioimageio._identifier(c.name, i) for i, c in enumerate(project.classes.classes)]
    assert channels == ["background", "class1"]
    config = export_bioimageio.class_config(project)
    assert config["microns_per_pixel"] == 0.25 and config["classes"][1]["name"] == "tumour cells"
    assert "pixel size: 0.25 µm per pixel (`[instances] microns_per_pixel`)" in export_bioimageio.readme(project, {})
