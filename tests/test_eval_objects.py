"""``segkit eval`` scores objects with ``[instances]``: evaluation.csv's object rows, one row per test
image in evaluation_per_image.csv, ignored nuclei counted nowhere, and the pixel side as it was."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from segkit import toml_io
from segkit.classes import IGNORE_INDEX, ClassInfo, ClassTable
from segkit.errors import DataError
from segkit.run_folder import EVALUATION, EVALUATION_PER_IMAGE, REPLACED, RUN_MARKER, finish_run, start_run
from cli_results import invoke, single_error_line, snapshot
from tiny_data import COLOURS, HEADER, tiny_project, write_tiny_project

WHITE = (255, 255, 255)
CLASSES = ClassTable(tuple(ClassInfo(name, COLOURS[index]) for index, name in enumerate(("background", "benign",
                                                                                        "malignant"))), WHITE)
#: the pixel rows of the tiny project's evaluation.csv, in their order
PIXEL_ROWS = ["dice_crossentropy", "dice_coef_multiclass", "mean_foreground_dice", "dice_background", "dice_benign",
              "dice_malignant", "iou_background", "iou_benign", "iou_malignant"]
#: the object figures of one group (overall, or one class with ``_<class>``)
FIGURES = ["object_precision", "object_recall", "object_f1", "aji", "dq", "sq", "pq"]


def _document(**changes: Any) -> dict[str, Any]:
    """The tiny project trained here, white marking pixels to ignore (no tiny mask has white).

    One epoch of the tiny project's two steps finds no nucleus, and object scores of nothing found
    test little: 6 epochs of single-image steps with the foreground Dice in the loss find the
    malignant discs (Dice ~0.8) in ~15 s; no epoch-change montages.
    """
    train = {**tiny_project()["train"], "epochs": 6, "batch_size": 1, "reducer": {"factor": 0.5, "patience": 5}}
    return tiny_project(mask={"ignore_color": list(WHITE)}, loss={"name": "dice_crossentropy"}, train=train,
                        callbacks=[], **changes)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("eval-objects")
    project = write_tiny_project(folder, epochs=1)
    project.write_text(HEADER + toml_io.dumps(_document()), encoding="utf-8")
    result = invoke("train", project, "--quiet")
    assert result.exit_code == 0, result.output
    return project


def _project_file(trained: Path, name: str, **changes: Any) -> Path:
    """Another project file beside the trained one (same data, same run folder), with ``changes``."""
    path = trained.parent / name
    path.write_text(HEADER + toml_io.dumps(_document(**changes)), encoding="utf-8")
    return path


def _with_instances(trained: Path, **dataset: Any) -> Path:
    instances = {"instances": {"name": "connected-components"}}
    if dataset:
        instances["dataset"] = {**_document()["dataset"], **dataset}
    return _project_file(trained, "objects.toml", **instances)


def _run_copy(trained: Path, folder: Path) -> Path:
    run = folder / "run"
    shutil.copytree(trained.parent / "run", run)
    return run


def _eval(project: Path, run: Path, *options: str) -> Any:
    return invoke("eval", project, "--set", f"project.output_dir='{run}'", *options)


def _figures(run: Path) -> dict[str, str]:
    with (run / EVALUATION).open(newline="", encoding="utf-8") as handle:
        return {row["metric"]: row["value"] for row in csv.DictReader(handle)}


def _per_image(run: Path) -> list[dict[str, str]]:
    with (run / EVALUATION_PER_IMAGE).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _object_names(classes: tuple[str, ...] = ("benign", "malignant")) -> list[str]:
    split = [*FIGURES, "mpq", *(f"{figure}_{name}" for name in classes for figure in FIGURES)]
    return ["object_tp", "object_fp", "object_fn", *split, *(f"{name}_image_mean" for name in split)]


def _labels(mask: np.ndarray, min_area: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The 4-connected components of each foreground class of a class-index mask, and their classes,
    from scikit-image alone: the truth of a mask without instance ids, and with ``min_area`` 4 what
    connected-components (its default) makes of an argmax mask."""
    from skimage.measure import label

    regions = label(np.where(mask == IGNORE_INDEX, 0, mask), background=0, connectivity=1)
    small = np.bincount(regions.ravel()) < min_area
    small[0] = False
    regions = label(np.where(small[regions], 0, mask), background=0, connectivity=1)
    classes = np.array([mask[regions == i][0] for i in range(1, int(regions.max()) + 1)], np.int64)
    return regions.astype(np.int32), classes


def _class_indices(rgb: np.ndarray) -> np.ndarray:
    lut = {colour: index for index, colour in COLOURS.items()} | {WHITE: IGNORE_INDEX}
    return np.array([[lut[tuple(pixel)] for pixel in row] for row in rgb], np.uint8)


def _read_classes(path: Path) -> np.ndarray:
    return _class_indices(np.asarray(Image.open(path).convert("RGB")))


@pytest.fixture(scope="module")
def scored(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The trained run evaluated without and with ``[instances]``, each in a copy of its own, and
    ``segkit infer``'s masks of the test images (the same model's argmax, written by another path)."""
    folder = tmp_path_factory.mktemp("scored")
    runs = {"plain": _run_copy(trained, folder / "plain"), "objects": _run_copy(trained, folder / "objects")}
    for project, run in ((trained, runs["plain"]), (_with_instances(trained), runs["objects"])):
        result = _eval(project, run)
        assert result.exit_code == 0, result.output
    masks = folder / "masks"
    result = invoke("infer", trained, trained.parent / "data" / "test" / "images", "--out", masks,
                    "--set", f"project.output_dir='{runs['plain']}'")
    assert result.exit_code == 0, result.output
    return {**runs, "masks": masks}


def test_without_instances_evaluation_csv_is_the_pixel_rows_and_objects_follow_them(scored: dict[str, Path]) -> None:
    plain = (scored["plain"] / EVALUATION).read_text(encoding="utf-8")
    with_objects = (scored["objects"] / EVALUATION).read_text(encoding="utf-8")
    assert [line.split(",")[0] for line in plain.splitlines()] == ["metric", *PIXEL_ROWS]
    assert with_objects.startswith(plain)  # the pixel rows byte for byte, the object rows after them
    assert [line.split(",")[0] for line in with_objects[len(plain):].splitlines()] == _object_names()
    assert list(_per_image(scored["plain"])[0]) == ["image", *(f"{score}_{name}" for score in ("dice", "iou")
                                                             for name in ("background", "benign", "malignant")),
                                                    "mean_foreground_dice"]


def test_object_figures_are_the_scorers_on_infers_masks(scored: dict[str, Path], trained: Path) -> None:
    from segkit.objects.scoring import image_figures, object_figures, score_image

    test = trained.parent / "data" / "test"
    images, rows = [], _per_image(scored["objects"])
    for row, mask in zip(rows, sorted((test / "masks").iterdir()), strict=True):
        truth, predicted = _labels(_read_classes(mask)), _labels(_read_classes(scored["masks"] / mask.name), 4)
        images.append(score_image(*truth, *predicted, None, [1, 2]))
        expected = image_figures(images[-1], {0: "background", 1: "benign", 2: "malignant"})
        assert {name: float(row[name]) for name in expected} == pytest.approx(expected, abs=2e-6, nan_ok=True)
        assert [int(row[f"object_{count}"]) for count in ("tp", "fp", "fn")] == [
            images[-1].overall.tp, images[-1].overall.fp, images[-1].overall.fn]
    assert sum(image.overall.tp for image in images) > 0  # the model finds nuclei: the figures say something
    written = _figures(scored["objects"])
    expected = object_figures(images, {0: "background", 1: "benign", 2: "malignant"})
    assert {name: float(written[name]) for name in expected} == pytest.approx(expected, abs=2e-6, nan_ok=True)


def test_per_image_rows_are_the_test_images_and_their_counts_sum_to_the_split(scored: dict[str, Path],
                                                                             trained: Path) -> None:
    rows, figures = _per_image(scored["objects"]), _figures(scored["objects"])
    assert [row["image"] for row in rows] == sorted(p.name for p in (trained.parent / "data" / "test" / "images").iterdir())
    for count in ("tp", "fp", "fn"):
        assert sum(int(row[f"object_{count}"]) for row in rows) == int(figures[f"object_{count}"])
    defined = [float(row["aji"]) for row in rows if row["aji"] != "nan"]
    assert float(figures["aji_image_mean"]) == pytest.approx(sum(defined) / len(defined), abs=2e-6)
    plain = _per_image(scored["plain"])
    assert [{k: row[k] for k in plain[0]} for row in rows] == plain  # the same pixel columns with or without objects


def test_per_image_pixel_dice_is_the_by_hand_count_of_infers_masks(scored: dict[str, Path], trained: Path) -> None:
    masks = sorted((trained.parent / "data" / "test" / "masks").iterdir())
    for row, mask in zip(_per_image(scored["plain"]), masks, strict=True):
        truth, predicted = _read_classes(mask), _read_classes(scored["masks"] / mask.name)
        for index, name in enumerate(("background", "benign", "malignant")):
            both = int(np.sum((truth == index) & (predicted == index)))
            sizes = int(np.sum(truth == index)) + int(np.sum(predicted == index))
            expected = 2 * both / sizes if sizes else float("nan")
            assert float(row[f"dice_{name}"]) == pytest.approx(expected, abs=2e-6, nan_ok=True), (mask.name, name)
            union = sizes - both
            assert float(row[f"iou_{name}"]) == pytest.approx(both / union if union else float("nan"), abs=2e-6,
                                                              nan_ok=True)


def test_the_console_says_which_object_figures_are_split_level_and_which_per_image_means(
        trained: Path, tmp_path: Path) -> None:
    run = _run_copy(trained, tmp_path)
    result = _eval(_with_instances(trained), run, "--quiet")
    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.output.splitlines()]
    assert lines[0] == "tiny: test split, pixels"
    assert "objects, split level: counts summed over the 4 test images, then each figure" in lines
    assert ("objects, per-image mean: each figure of each image, averaged over the images where it is defined "
            "(0/0 is undefined)") in lines
    assert lines[-2:] == [f"written {run / EVALUATION_PER_IMAGE}", f"written {run / EVALUATION}"]
    shown = {cells[1]: cells[2] for line in lines if len(cells := [c.strip() for c in line.split("│")]) == 4}
    figures = _figures(run)
    assert shown["object_tp"] == figures["object_tp"] and shown["pq_image_mean"] == f"{float(figures['pq_image_mean']):.4f}"


def _one_nucleus_split(folder: Path, ignored: bool) -> dict[str, str]:
    """A test split of one pink image with one dark disc (a malignant nucleus, id 1 in its instance
    TIFF); ``ignored``: all of the disc but a two-pixel sliver lies in a white (ignored) square."""
    from segkit.objects.labels import write_instance_labels

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:64, 0:64]
    disc = (yy - 32) ** 2 + (xx - 32) ** 2 <= 64
    image = np.where(disc[..., None], (60, 20, 110), (230, 170, 200)) + rng.normal(0, 6, (64, 64, 3))
    mask = np.where(disc[..., None], COLOURS[2], COLOURS[0]).astype(np.uint8)
    if ignored:
        mask[20:45, 20:39] = WHITE
    for name in ("images", "masks", "instances"):
        (folder / name).mkdir(parents=True)
    Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(folder / "images" / "one.png")
    Image.fromarray(mask).save(folder / "masks" / "one.png")
    write_instance_labels(folder / "instances" / "one.tif", disc.astype(np.int32))
    return {name: str(folder / name) for name in ("images", "masks", "instances")}


def test_a_nucleus_in_the_ignore_region_counts_on_neither_side(trained: Path, tmp_path: Path) -> None:
    rows = {}
    for ignored in (False, True):
        split = _one_nucleus_split(tmp_path / f"ignored-{ignored}", ignored)
        run = _run_copy(trained, tmp_path / f"run-{ignored}")
        result = _eval(_with_instances(trained, test=split), run)
        assert result.exit_code == 0, result.output
        [rows[ignored]] = _per_image(run)
    counts = {ignored: [int(rows[ignored][f"object_{n}"]) for n in ("tp", "fp", "fn")] for ignored in rows}
    assert counts[False][0] + counts[False][2] == 1  # scored where it is not ignored: found or missed
    assert counts[True][0] == counts[True][2] == 0  # ignored: neither found nor missed
    assert counts[True][1] == counts[False][1]  # and the prediction of it is no false positive either


def test_instance_labels_of_another_size_are_one_line_and_the_earlier_evaluation_stays(
        trained: Path, tmp_path: Path) -> None:
    from segkit.objects.labels import write_instance_labels

    split = _one_nucleus_split(tmp_path / "split", ignored=False)
    run = _run_copy(trained, tmp_path)
    project = _with_instances(trained, test=split)
    assert _eval(project, run).exit_code == 0
    before = snapshot(run)
    assert EVALUATION in before and EVALUATION_PER_IMAGE in before
    labels = Path(split["instances"]) / "one.tif"
    write_instance_labels(labels, np.ones((32, 48), np.int32))
    line = single_error_line(_eval(project, run))
    assert str(labels) in line and "48x32" in line and "64x64" in line, line
    assert snapshot(run) == before


class _UncheckedSource:
    """A third-party dataset with instance ids and no ``check``: eval itself compares the sizes."""

    def pairs(self, split: str) -> list[Any]:
        return []

    def load(self, pair: Any) -> tuple[Any, Any]:
        raise AssertionError("not called")

    def instances(self, pair: Any) -> np.ndarray:
        return np.zeros((8, 16), np.int32)


def test_instance_ids_of_another_size_from_a_source_without_checks_are_a_data_error() -> None:
    from segkit.data.pairing import Pair
    from segkit.engine.object_eval import PerImageScores

    scores = PerImageScores(CLASSES, _UncheckedSource(), lambda probabilities, image: None)
    pair = Pair("a", Path("/data/a.png"), Path("/data/a_mask.png"))
    with pytest.raises(DataError) as error:
        scores.add(pair, np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8), np.ones((4, 4, 3), np.float32) / 3)
    assert "16x8" in str(error.value) and "4x4" in str(error.value) and "a.png" in str(error.value)


def test_train_overwrite_takes_the_evaluation_files_with_the_run(scored: dict[str, Path]) -> None:
    from segkit.run_lock import run_folder_lock

    run = scored["objects"]
    entries = json.loads((run / RUN_MARKER).read_text(encoding="utf-8"))["entries"]
    assert {EVALUATION, EVALUATION_PER_IMAGE} <= set(entries)
    notes: list[str] = []
    with run_folder_lock(run, "train", notes.append):
        claim = start_run(run, overwrite=True, resume=False, note=notes.append)
        assert not (run / EVALUATION).exists() and not (run / EVALUATION_PER_IMAGE).exists()
        assert (run / REPLACED / EVALUATION).is_file() and (run / REPLACED / EVALUATION_PER_IMAGE).is_file()
        finish_run(claim, notes.append)  # no checkpoint yet: the earlier run comes back, its evaluation too
    assert (run / EVALUATION).is_file() and (run / EVALUATION_PER_IMAGE).is_file()


def test_a_model_scored_at_full_resolution_gets_the_same_rows_from_its_one_prediction(
        scored: dict[str, Path], trained: Path, tmp_path: Path) -> None:
    """With ``augment.crop`` eval predicts each test image once, by sliding windows, for the split's
    pixel metrics and the image's row; on 64x64 images under a 64x64 window that is what the resize
    path predicts, so the rows and the object figures agree with it."""
    run = _run_copy(trained, tmp_path)
    result = _eval(_with_instances(trained), run, "--set", "augment.enabled=true", "--set", "augment.crop=true")
    assert result.exit_code == 0, result.output
    tiled, resized = _per_image(run), _per_image(scored["objects"])
    assert [row["image"] for row in tiled] == [row["image"] for row in resized]
    for tile_row, resize_row in zip(tiled, resized):
        assert {k: float(v) for k, v in tile_row.items() if k != "image"} == pytest.approx(
            {k: float(v) for k, v in resize_row.items() if k != "image"}, abs=1e-3, nan_ok=True)
    tiled_figures, resized_figures = _figures(run), _figures(scored["objects"])
    assert list(tiled_figures) == list(resized_figures)
    assert float(tiled_figures["mean_foreground_dice"]) == pytest.approx(float(resized_figures["mean_foreground_dice"]),
                                                                        abs=1e-3)


def test_an_instancer_returning_labels_of_another_shape_is_a_plugin_error_naming_it() -> None:
    from segkit.data.pairing import Pair
    from segkit.engine.object_eval import PerImageScores
    from segkit.errors import PluginError
    from segkit.specs import Instances

    def sideways(probabilities: np.ndarray, image: np.ndarray) -> Instances:
        return Instances(np.ones((4, 5), np.int32), np.array([1]), np.array([0.9], np.float32))

    scores = PerImageScores(CLASSES, _UncheckedSource(), sideways, "sideways")
    pair = Pair("a", Path("/data/a.png"), Path("/data/a_mask.png"))
    with pytest.raises(PluginError) as error:
        scores.add(pair, np.zeros((8, 16, 3), np.uint8), np.zeros((8, 16), np.uint8), np.ones((8, 16, 3), np.float32) / 3)
    message = str(error.value)
    assert message == ("instancer 'sideways': returned labels of shape (4, 5), not the image's (8, 16) for a.png "
                       "(a bug in the instancer plugin; report it to its authors)")
