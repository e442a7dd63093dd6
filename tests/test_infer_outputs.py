"""``segkit infer`` and ``segkit export`` outputs: paths on the command line, and never a user's file replaced."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segkit.data.images import read_image, read_mask
from cli_results import invoke, single_error_line, trained_tiny_project


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()} if folder.is_dir() else {}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_tiny_project(tmp_path_factory.mktemp("outputs"))


@pytest.fixture
def images(trained: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny project's three infer images."""
    folder = tmp_path / "images"
    shutil.copytree(trained.parent / "data" / "infer", folder)
    return folder


def test_output_equal_to_the_images_is_refused_and_the_images_kept(trained: Path, images: Path) -> None:
    before = files(images)
    line = single_error_line(invoke("infer", trained, "--set", f"infer.images='{images}'",
                            "--set", f"infer.output='{images}'"))
    assert line == (f"error: {trained}: infer.output: '{images}' is (or lies inside) the folder of the images to "
                    f"segment, '{images}'; choose another output folder")
    assert files(images) == before
    line = single_error_line(invoke("infer", trained, images, "--out", images / "masks"))
    assert line.startswith(f"error: --out: '{images / 'masks'}' is (or lies inside) the folder of the images")
    assert files(images) == before and not (images / "masks").exists()


def test_an_output_folder_linked_to_the_images_is_refused(trained: Path, images: Path, tmp_path: Path) -> None:
    link = tmp_path / "masks"
    link.symlink_to(images, target_is_directory=True)
    before = files(images)
    line = single_error_line(invoke("infer", trained, images / "odd_1.png", "--out", link))
    assert line == f"error: '{link / 'odd_1.png'}': is the input image '{images / 'odd_1.png'}'; choose another output folder"
    assert files(images) == before


def test_two_files_given_write_exactly_their_two_masks(trained: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "two"
    result = invoke("infer", trained, images / "odd_1.png", images / "odd_2.png", "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(files(out)) == [".segkit-outputs.json", "odd_1.png", "odd_2.png"]
    assert sorted(files(tmp_path / "two_overlay")) == [".segkit-outputs.json", "odd_1.png", "odd_2.png"]
    for name in ("odd_1.png", "odd_2.png"):
        assert Image.open(out / name).size == Image.open(images / name).size
    assert result.output.startswith(f"2 masks → {out}; overlays → {out}_overlay")
    # a folder argument means every image directly in it
    result = invoke("infer", trained, images, "-o", tmp_path / "all")
    assert result.exit_code == 0, result.output
    assert sorted(files(tmp_path / "all")) == [".segkit-outputs.json", "odd_0.png", "odd_1.png", "odd_2.png"]


def test_a_users_file_named_like_a_mask_is_kept_unless_overwrite(trained: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "masks"
    out.mkdir()
    (out / "odd_1.png").write_bytes(b"my own drawing")
    line = single_error_line(invoke("infer", trained, images, "--out", out))
    assert line == (f"error: '{out}': masks would replace 1 file(s) segkit did not write ('odd_1.png'); move them, "
                    "choose another output folder, or pass --overwrite")
    assert files(out) == {"odd_1.png": b"my own drawing"} and not (tmp_path / "masks_overlay").exists()
    result = invoke("infer", trained, images, "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert f"replaced 1 file(s) segkit had not written (--overwrite): '{out / 'odd_1.png'}'" in result.output
    assert Image.open(out / "odd_1.png").size == Image.open(images / "odd_1.png").size


def test_infer_replaces_its_own_earlier_masks_without_overwrite(trained: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    assert invoke("infer", trained, images, "--out", out).exit_code == 0
    first = files(out)
    (out / "odd_0.png").write_bytes(b"stale")  # an earlier mask of ours, whatever its bytes now
    result = invoke("infer", trained, images, "--out", out)
    assert result.exit_code == 0, result.output
    assert "replaced" not in result.output
    assert files(out) == first
    assert np.asarray(Image.open(out / "odd_0.png")).shape[:2] == (64, 64)


@pytest.mark.parametrize(("name", "problem"), [("missing.png", "does not exist"),
                                                ("notes.txt", "is not an image (.png .jpg .jpeg .tif .tiff .bmp) or a slide an "
                                                 "installed reader opens")])
def test_a_bad_path_argument_is_one_quoted_line(trained: Path, images: Path, tmp_path: Path, name: str,
                                                problem: str) -> None:
    (images / "notes.txt").write_text("not an image")
    line = single_error_line(invoke("infer", trained, images / "odd_0.png", images / name, "--out", tmp_path / "o"))
    assert line == f"error: '{images / name}': {problem}; give image or slide files or folders of them"
    assert not (tmp_path / "o").exists()


def test_two_images_with_one_stem_are_refused(trained: Path, images: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(images / "odd_0.png", other / "odd_0.png")
    line = single_error_line(invoke("infer", trained, images / "odd_0.png", other / "odd_0.png", "--out", tmp_path / "o"))
    assert line == (f"error: '{images / 'odd_0.png'}' and '{other / 'odd_0.png'}': both would write the mask "
                    "'odd_0.png'; segment them into separate output folders")


def test_eval_infer_and_export_load_the_checkpoint_without_building_a_model(
        trained: Path, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One copy of the weights: the .keras file is loaded as it is, no FlexUNet is built beside it,
    and the masks are those of the saved model."""
    import keras

    from segkit_flexunet import flexunet
    from segkit.engine.components import prediction_for
    from segkit.engine.predict import segment
    from segkit.project import load_project

    builds: list[int] = []
    real = flexunet.build_flexunet
    monkeypatch.setattr(flexunet, "build_flexunet", lambda *a, **k: builds.append(1) or real(*a, **k))
    out = tmp_path / "masks"
    for args in (["infer", trained, images, "--out", out], ["eval", trained],
                 ["export", trained, "-f", "keras", "--out", tmp_path / "m.keras"]):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
    assert builds == []
    project = load_project(trained)
    saved = keras.saving.load_model(project.output_dir / "models" / "best_model.keras", compile=False)
    for path in sorted(images.iterdir()):
        expected = segment(saved, [read_image(path)], prediction_for(project))[0]
        written, _ = read_mask(out / path.name, project.classes)
        assert np.array_equal(written, expected), path.name


def _large_copy(images: Path, folder: Path) -> Path:
    """``images`` with one 333x517 image added (over twice the tiny model's 64 px on both sides)."""
    shutil.copytree(images, folder)
    big = np.asarray(Image.open(min(images.iterdir())).convert("RGB").resize((333, 517)))
    Image.fromarray(big).save(folder / "big.png")
    return folder


SQUASHED = ("note: 1 of {n} images are more than 2x the model input (64x64) on a side (largest 'big.png', 333x517); "
            "resize mode squashes them to 64x64: train with [augment] crop = true to segment them at full resolution")


def test_infer_notes_images_that_resize_mode_squashes(trained: Path, images: Path, tmp_path: Path) -> None:
    folder = _large_copy(images, tmp_path / "large")
    result = invoke("infer", trained, folder, "--out", tmp_path / "masks")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == SQUASHED.format(n=4)
    result = invoke("infer", trained, images, "--out", tmp_path / "small")  # all within 2x: no note
    assert result.exit_code == 0 and "note:" not in result.output, result.output


def _eval_with_a_large_test_image(trained: Path, tmp_path: Path) -> list[object]:
    """``segkit eval`` arguments for a copy of the run and of the test split with a 333x517 pair added."""
    test = trained.parent / "data" / "test"
    images = _large_copy(test / "images", tmp_path / "test-images")
    masks = tmp_path / "test-masks"
    shutil.copytree(test / "masks", masks)
    Image.open(masks / "img_00.png").resize((333, 517), Image.Resampling.NEAREST).save(masks / "big.png")
    shutil.copytree(trained.parent / "run", tmp_path / "run")
    return ["eval", trained, "--set", f"dataset.test.images='{images}'", "--set", f"dataset.test.masks='{masks}'",
            "--set", f"project.output_dir='{tmp_path / 'run'}'"]


def test_eval_notes_test_images_that_resize_mode_squashes(trained: Path, tmp_path: Path) -> None:
    result = invoke(*_eval_with_a_large_test_image(trained, tmp_path))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == SQUASHED.format(n=5)


def test_quiet_eval_and_infer_print_only_the_summary(trained: Path, images: Path, tmp_path: Path) -> None:
    args = _eval_with_a_large_test_image(trained, tmp_path)
    loud, quiet = invoke(*args), invoke(*args, "--quiet")
    assert loud.exit_code == quiet.exit_code == 0, loud.output + quiet.output
    assert loud.output.splitlines()[0].startswith("note: ")
    assert quiet.output.splitlines() == loud.output.splitlines()[1:]  # the figures table and the file written
    assert quiet.output.splitlines()[-1] == f"written {tmp_path / 'run' / 'evaluation.csv'}"
    infer_args = ["infer", trained, _large_copy(images, tmp_path / "to-segment"), "--out", tmp_path / "o", "-q"]
    result = invoke(*infer_args)
    assert result.exit_code == 0, result.output
    assert result.output == f"4 masks → {tmp_path / 'o'}; overlays → {tmp_path / 'o'}_overlay\n"


def test_a_model_whose_classes_register_while_building_is_built_once(tiny_project: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin that imports its custom layers only when it builds: the file cannot load first, so
    the model is built once (registering them) and the file loaded again."""
    import keras

    from segkit.engine.best_model import load_best_model
    from segkit.project import load_project

    class Doubled(keras.layers.Layer):
        def call(self, x: object) -> object:
            return keras.ops.softmax(x * 2.0)

    name = "segkit_test_custom>Doubled"
    keras.saving.register_keras_serializable(package="segkit_test_custom")(Doubled)
    project = load_project(tiny_project)
    inputs = keras.Input((64, 64, 3))
    model = keras.Model(inputs, Doubled()(keras.layers.Conv2D(3, 1)(inputs)))
    (project.output_dir / "models").mkdir(parents=True)
    model.save(project.output_dir / "models" / "best_model.keras")
    monkeypatch.delitem(keras.saving.get_custom_objects(), name)  # as in a fresh process

    from segkit_flexunet import flexunet

    builds: list[int] = []

    def build_registering(*args: object, **kwargs: object) -> object:
        builds.append(1)
        keras.saving.get_custom_objects()[name] = Doubled
        return model

    monkeypatch.setattr(flexunet, "build_flexunet", build_registering)
    loaded = load_best_model(project)
    assert builds == [1]
    image = np.random.default_rng(0).random((1, 64, 64, 3)).astype("float32")
    assert np.allclose(loaded.predict_on_batch(image), model.predict_on_batch(image))
