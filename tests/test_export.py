"""``segkit export``: each format reloads in a fresh process without segkit and agrees with ``segkit infer``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segkit.cli.main import app
from segkit.data.images import read_image, read_mask
from segkit.data.tiles import tile_origins
from segkit.project import Project, load_project
from segkit_process import block_imports, output_of, run_python
from tiny_data import write_tiny_project

runner = CliRunner()
SEGKIT_PACKAGES = ["segkit", "segkit_flexunet", "segkit_training", "segkit_masks", "segkit_synthetic"]

#: argv: savedmodel-or-onnx-or-"-", keras-or-"-", npz out, images...; writes softmax and masks per image.
RELOAD = block_imports(SEGKIT_PACKAGES) + """
import numpy as np
from PIL import Image
graph, keras_file, npz, *images = sys.argv[1:]
arrays = [np.asarray(Image.open(path).convert("RGB")) for path in images]
out = {}
if graph.endswith(".onnx"):
    import onnxruntime
    session = onnxruntime.InferenceSession(graph)
    names = [o.name for o in session.get_outputs()]
    for i, image in enumerate(arrays):
        result = dict(zip(names, session.run(None, {"image": image})))
        out[f"mask{i}"], out[f"probabilities{i}"] = result["mask"], result["probabilities"]
elif graph != "-":
    import tensorflow as tf
    serve = tf.saved_model.load(graph).signatures["serving_default"]
    for i, image in enumerate(arrays):
        result = serve(image=tf.constant(image))
        out[f"mask{i}"], out[f"probabilities{i}"] = result["mask"].numpy(), result["probabilities"].numpy()
if keras_file != "-":
    import keras
    model = keras.saving.load_model(keras_file)
    for i, image in enumerate(arrays):
        if image.shape[:2] == tuple(model.input_shape[1:3]):
            out[f"keras{i}"] = model.predict_on_batch(image[None].astype("float32") / 255.0)[0]
np.savez(npz, **out)
print("segkit imported:", any(sys.modules.get(name) for name in SEGKIT_PACKAGES))
""".replace("SEGKIT_PACKAGES", repr(SEGKIT_PACKAGES))


def train(project: Path) -> Project:
    result = runner.invoke(app, ["train", str(project), "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["infer", str(project)])
    assert result.exit_code == 0, result.output
    return load_project(project)


@pytest.fixture(scope="module")
def resized(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Trained on resized images (the default): the export resizes in its graph."""
    return train(write_tiny_project(tmp_path_factory.mktemp("resized"), epochs=1))


@pytest.fixture(scope="module")
def cropped(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Trained on 32x32 crops of 64x64 images with flip TTA: the export tiles in its graph."""
    project = write_tiny_project(tmp_path_factory.mktemp("cropped"), epochs=1)
    text = project.read_text().replace("image_width = 64\nimage_height = 64", "image_width = 32\nimage_height = 32")
    project.write_text(text + "tta = true\noverlap = 0.5\n\n[augment]\ncrop = true\n")
    return train(project)


def infer_images(project: Project) -> list[Path]:
    assert project.infer.images is not None
    return sorted(project.infer.images.iterdir())


def reference(project: Project) -> list[np.ndarray]:
    """The softmax ``segkit infer`` computes, image by image."""
    from segkit.engine.best_model import load_best_model
    from segkit.engine.components import prediction_for
    from segkit.engine.predict import probabilities

    model = load_best_model(project)
    return [probabilities(model, [read_image(path)], prediction_for(project))[0] for path in infer_images(project)]


def reload(project: Project, graph: Path | str, keras_file: Path | str = "-") -> dict[str, np.ndarray]:
    npz = project.output_dir / "reloaded.npz"
    result = run_python(RELOAD, [graph, keras_file, npz, *infer_images(project)])
    assert result.returncode == 0, output_of(result)
    assert "segkit imported: False" in result.stdout
    return dict(np.load(npz))


def export(project: Project, fmt: str, *extra: str) -> Path:
    result = runner.invoke(app, ["export", str(project.source), "--format", fmt, *extra])
    assert result.exit_code == 0, result.output
    target = project.output_dir / "export" / ("savedmodel" if fmt == "savedmodel" else f"tiny.{fmt}")
    assert target.exists() and Path(f"{target}.json").exists()
    return target


def assert_agrees_with_infer(project: Project, reloaded: dict[str, np.ndarray]) -> None:
    for i, (path, expected) in enumerate(zip(infer_images(project), reference(project))):
        probabilities, mask = reloaded[f"probabilities{i}"], reloaded[f"mask{i}"]
        assert probabilities.shape == expected.shape and mask.shape == expected.shape[:2] == read_image(path).shape[:2]
        assert np.abs(probabilities - expected).max() <= 1e-4, path.name
        written, _ = read_mask(project.infer.output / path.name, project.classes)  # what `segkit infer` wrote
        top_two = np.sort(expected, axis=2)[:, :, -2:]
        differ = written != mask
        # a pixel may only flip where two classes tie to within the tolerance
        assert not differ.any() or (top_two[:, :, 1] - top_two[:, :, 0])[differ].max() <= 1e-4, path.name


def test_savedmodel_and_keras_reload_without_segkit_and_match_infer(resized: Project) -> None:
    savedmodel, keras_file = export(resized, "savedmodel"), export(resized, "keras")
    assert (savedmodel / "saved_model.pb").exists()
    reloaded = reload(resized, savedmodel, keras_file)
    assert_agrees_with_infer(resized, reloaded)
    square = [i for i, p in enumerate(infer_images(resized)) if Image.open(p).size == (64, 64)]
    assert square and all(f"keras{i}" in reloaded for i in square)
    for i in square:  # at the model's own size no resize happens: the bare network must agree
        assert np.abs(reloaded[f"keras{i}"] - reloaded[f"probabilities{i}"]).max() <= 1e-4
    metadata = json.loads(Path(f"{savedmodel}.json").read_text())
    assert metadata["mode"] == "resize"
    assert [c["name"] for c in metadata["classes"]] == ["background", "benign", "malignant"]


def test_crop_trained_export_tiles_inside_the_graph(cropped: Project) -> None:
    savedmodel = export(cropped, "savedmodel")
    assert json.loads(Path(f"{savedmodel}.json").read_text())["mode"] == "tile"
    assert_agrees_with_infer(cropped, reload(cropped, savedmodel))


def test_onnx_without_the_converter_is_a_one_line_refusal(resized: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    # runs whether or not tf2onnx is installed (CI installs it): a None entry makes it unimportable
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    result = runner.invoke(app, ["export", str(resized.source), "--format", "onnx"])
    assert result.exit_code == 2
    assert result.output.startswith("error: ONNX export needs the tf2onnx converter, which is not installed here")
    assert not (resized.output_dir / "export" / "tiny.onnx").exists()


def test_onnx_export_matches_infer(resized: Project) -> None:
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    assert_agrees_with_infer(resized, reload(resized, export(resized, "onnx")))


def test_export_replaces_only_its_own_files(resized: Project, tmp_path: Path) -> None:
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["export", str(resized.source), "--out", str(occupied)])
    assert result.exit_code == 2 and "exists and is not a SavedModel folder" in result.output
    assert (occupied / "notes.txt").read_text() == "mine"
    result = runner.invoke(app, ["export", str(resized.source), "--format", "keras", "--out", str(tmp_path / "m.h5")])
    assert result.exit_code == 2 and "must end in .keras" in result.output


def test_export_before_training_says_so(tiny_project: Path) -> None:
    result = runner.invoke(app, ["export", str(tiny_project), "--format", "keras"])
    assert result.exit_code == 2 and "no trained model yet" in result.output


def test_graph_windows_and_resize_follow_segkit() -> None:
    import tensorflow as tf

    from segkit.engine.serving import resize_bilinear, window_origins

    for shape in [(64, 64), (97, 53), (40, 120), (200, 33)]:
        for overlap in (0.0, 0.5, 0.9):
            assert window_origins(tf.constant(shape), (32, 32), overlap).numpy().tolist() == \
                [list(o) for o in tile_origins(shape, (32, 32), overlap)]
    values = np.random.default_rng(0).random((97, 53)).astype(np.float32)
    pillow = np.asarray(Image.fromarray(values, mode="F").resize((64, 64), Image.Resampling.BILINEAR))
    assert np.abs(resize_bilinear(values[:, :, None], 64, 64).numpy()[:, :, 0] - pillow).max() < 1e-5
    assert np.array_equal(resize_bilinear(values[:, :, None], 97, 53).numpy()[:, :, 0], values)


def test_export_never_replaces_a_file_it_did_not_write(resized: Project, tmp_path: Path) -> None:
    mine = tmp_path / "mine.keras"
    mine.write_bytes(b"my own model")
    result = runner.invoke(app, ["export", str(resized.source), "--format", "keras", "--out", str(mine)])
    assert result.exit_code == 2, result.output
    assert result.output == (f"error: {mine}: exists and was not written by segkit export; choose another --out "
                             "or pass --overwrite to replace it\n")
    assert mine.read_bytes() == b"my own model" and not Path(f"{mine}.json").exists()
    # a metadata file of the user's beside the target is as much theirs
    (tmp_path / "m.keras.json").write_text("{}")
    result = runner.invoke(app, ["export", str(resized.source), "-f", "keras", "--out", str(tmp_path / "m.keras")])
    assert result.exit_code == 2 and "m.keras.json: exists and was not written by segkit export" in result.output
    assert (tmp_path / "m.keras.json").read_text() == "{}" and not (tmp_path / "m.keras").exists()


def test_export_overwrite_replaces_a_foreign_file_and_says_so(resized: Project, tmp_path: Path) -> None:
    mine = tmp_path / "mine.keras"
    mine.write_bytes(b"my own model")
    result = runner.invoke(app, ["export", str(resized.source), "-f", "keras", "--out", str(mine), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"replaced {mine} (--overwrite; it was not a segkit export)\n")
    assert mine.read_bytes()[:2] == b"PK"  # a .keras zip now


def test_export_replaces_its_own_earlier_export(resized: Project, tmp_path: Path) -> None:
    for fmt, target in (("keras", tmp_path / "again.keras"), ("savedmodel", tmp_path / "again")):
        for _ in range(2):
            result = runner.invoke(app, ["export", str(resized.source), "-f", fmt, "--out", str(target)])
            assert result.exit_code == 0, result.output
            assert "replaced" not in result.output
        assert json.loads(Path(f"{target}.json").read_text())["written_by"] == "segkit export"
