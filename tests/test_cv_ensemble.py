"""The fold ensemble (segkit/cv/ensemble.py): one Keras model averaging the folds' softmaxes, taken
unchanged by ``segkit infer --folds`` and ``segkit export --folds``; bad fold choices are one line.

Fold folders are made by saving small random Keras models (a 3x3 convolution, softmax over the tiny
project's three classes) where training puts them, with the run's record of its settings beside them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cli_results import invoke, single_error_line, snapshot
from segkit.cv.ensemble import ensemble_digest, ensemble_folds, load_ensemble
from segkit.cv.layout import FOLD_PLAN, fold_folder
from segkit.cv.plan import FoldPlan, read_plan
from segkit.cv.view import fold_project
from segkit.data.images import read_image
from segkit.engine.best_model import load_best_model
from segkit.project import Project, load_project
from segkit.run_folder import BEST_MODEL, RESOLVED_PROJECT
from segkit_process import environment
from tiny_data import tiny_project, write_tiny_project


def save_fold_model(project: Project, fold: int, seed: int) -> Path:
    """A random 3x3-convolution model as fold ``fold``'s best model, recorded as trained with ``project``."""
    import keras

    keras.utils.set_random_seed(seed)
    size = (project.model.image_height, project.model.image_width, 3)
    model = keras.Sequential([keras.Input(size), keras.layers.Conv2D(3, 3, padding="same"),
                              keras.layers.Conv2D(3, 1, activation="softmax")], name="tiny")
    folder = fold_folder(project.output_dir, fold)
    (folder / BEST_MODEL).parent.mkdir(parents=True, exist_ok=True)
    model.save(folder / BEST_MODEL)
    (folder / RESOLVED_PROJECT).write_text(project.resolved_toml(), encoding="utf-8")
    return folder / BEST_MODEL


def cv_project(folder: Path, seeds: list[int], **changes: Any) -> Project:
    """The tiny project (``changes``: whole tables of it) whose output folder holds one fold per seed
    (equal seeds: identical models)."""
    project = load_project(write_tiny_project(folder, epochs=1, **changes))
    for fold, seed in enumerate(seeds):
        save_fold_model(project, fold, seed)
    if seeds:  # the plan training writes first; which images each fold held out is no concern here
        empty = {"train": (), "valid": (), "test": ()}
        plan = FoldPlan({}, {}, tuple(empty for _ in seeds))
        (project.output_dir / FOLD_PLAN).write_text(plan.to_json(), encoding="utf-8")
    return project


def plan_of(project: Project) -> FoldPlan:
    plan = read_plan(project.output_dir)
    assert plan is not None
    return plan


def random_batch() -> np.ndarray:
    return np.random.default_rng(3).random((2, 64, 64, 3), np.float32)


def predicted(model: Any) -> np.ndarray:
    return np.asarray(model.predict_on_batch(random_batch()))


def test_the_ensemble_of_identical_folds_equals_one_fold(tmp_path: Path) -> None:
    project = cv_project(tmp_path, [5, 5, 5])
    single = predicted(load_best_model(fold_project(project, plan_of(project), 0)))
    ensemble = load_ensemble(project, ensemble_folds(project))
    assert [layer.name for layer in ensemble.layers] == ["image", "fold_0", "fold_1", "fold_2", "fold_mean"]
    assert np.abs(predicted(ensemble) - single).max() <= 1e-6
    assert single.std() > 0.01  # random weights: the comparison is of softmaxes that differ per pixel


def test_the_ensemble_of_two_folds_is_the_mean_of_their_softmaxes(tmp_path: Path) -> None:
    project = cv_project(tmp_path, [1, 2])
    first, second = (predicted(load_best_model(fold_project(project, plan_of(project), fold))) for fold in (0, 1))
    assert np.abs(first - second).max() > 0.05  # two different models
    assert np.abs(predicted(load_ensemble(project, [0, 1])) - (first + second) / 2).max() <= 1e-6
    assert np.abs(predicted(load_ensemble(project, [1])) - second).max() <= 1e-6


def test_a_saved_ensemble_loads_in_safe_mode_and_predicts_the_same(tmp_path: Path) -> None:
    import keras

    project = cv_project(tmp_path, [1, 2, 3])
    ensemble = load_ensemble(project, [0, 2])
    ensemble.save(tmp_path / "ensemble.keras")
    loaded = keras.saving.load_model(tmp_path / "ensemble.keras", compile=False, safe_mode=True)
    np.testing.assert_array_equal(predicted(loaded), predicted(ensemble))


def test_the_digest_names_the_folds_and_their_files(tmp_path: Path) -> None:
    project = cv_project(tmp_path, [1, 2, 3])
    digests = {ensemble_digest(project, folds) for folds in ([0, 1], [0, 2], [0, 1, 2])}
    assert len(digests) == 3 and ensemble_digest(project, [1, 0]) == ensemble_digest(project, [0, 1])
    before = ensemble_digest(project, [0, 1])
    save_fold_model(project, 1, 9)  # fold 1 retrained: another ensemble
    assert ensemble_digest(project, [0, 1]) != before


def mask_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.png"))}


def test_infer_with_identical_folds_writes_the_masks_of_one_fold(tmp_path: Path) -> None:
    project = cv_project(tmp_path, [4, 4, 4])
    single = invoke("infer", project.source, "--quiet", "--out", tmp_path / "single",
                    "--set", f"project.output_dir='{fold_folder(project.output_dir, 0)}'")
    assert single.exit_code == 0, single.output
    ensemble = invoke("infer", project.source, "--quiet", "--out", tmp_path / "ensemble", "--folds")
    assert ensemble.exit_code == 0, ensemble.output
    expected = mask_files(tmp_path / "single")
    assert sorted(expected) == ["odd_0.png", "odd_1.png", "odd_2.png"]
    assert mask_files(tmp_path / "ensemble") == expected
    decoded = [read_image(tmp_path / "single" / name, 3) for name in expected]
    assert len(np.unique(np.concatenate([d.reshape(-1, 3) for d in decoded]), axis=0)) > 1  # not one class


#: crop-trained on 32x32 windows with flip TTA: infer and the exported graph tile (Gaussian-blended)
TILED = {"model": dict(tiny_project()["model"], image_width=32, image_height=32), "augment": {"crop": True},
         "infer": {"images": "data/infer", "overlap": 0.5, "tta": True}}


@pytest.mark.parametrize("changes", [{}, TILED], ids=["resized", "tiled"])
def test_a_savedmodel_export_of_the_ensemble_computes_what_infer_does(tmp_path: Path, changes: dict[str, Any]) -> None:
    import tensorflow as tf

    from segkit.engine.components import prediction_for
    from segkit.engine.predict import probabilities

    project = cv_project(tmp_path, [1, 2, 3], **changes)
    inferred = invoke("infer", project.source, "--quiet", "--out", tmp_path / "masks", "--folds")
    assert inferred.exit_code == 0, inferred.output
    exported = invoke("export", project.source, "--folds", "--fold-subset", "0,2", "--out", tmp_path / "sm")
    assert exported.exit_code == 0, exported.output
    assert "savedmodel (ensemble of folds 0, 2) →" in exported.output
    metadata = json.loads((tmp_path / "sm.json").read_text())
    assert (metadata["folds"], metadata["mode"]) == ([0, 2], "tile" if changes else "resize")
    serve = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    ensemble, every, how = load_ensemble(project, [0, 2]), load_ensemble(project, [0, 1, 2]), prediction_for(project)
    palette = np.array([c.color for c in project.classes.classes], np.uint8)
    assert project.infer.images is not None
    for image_path in sorted(project.infer.images.iterdir()):
        image = read_image(image_path, 3)
        served = serve(image=tf.constant(image))
        expected = probabilities(ensemble, [image], how)[0]
        assert np.abs(served["probabilities"].numpy() - expected).max() <= 1e-4, image_path.name
        np.testing.assert_array_equal(served["mask"].numpy(), expected.argmax(axis=2))
        inferred_all = read_image(tmp_path / "masks" / image_path.name, 3)  # of folds 0, 1, 2
        all_three = probabilities(every, [image], how)[0]
        np.testing.assert_array_equal(inferred_all, palette[all_three.argmax(axis=2)])


def test_a_keras_export_of_the_ensemble_is_the_ensemble(tmp_path: Path) -> None:
    import keras

    project = cv_project(tmp_path, [1, 2, 3])
    exported = invoke("export", project.source, "--folds", "--format", "keras", "--out", tmp_path / "e.keras")
    assert exported.exit_code == 0, exported.output
    loaded = keras.saving.load_model(tmp_path / "e.keras", compile=False, safe_mode=True)
    np.testing.assert_allclose(predicted(loaded), predicted(load_ensemble(project, [0, 1, 2])), atol=1e-6)


def _refused(project: Project, out: Path, *options: str) -> str:
    """The one error line of ``segkit infer --folds OPTIONS``, having checked nothing was written."""
    before = snapshot(project.output_dir)
    line = single_error_line(invoke("infer", project.source, "--out", out, *options))
    assert not out.exists() and snapshot(project.output_dir) == before
    return line


def test_a_subset_naming_a_fold_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    project = cv_project(tmp_path / "p", [1, 2])
    line = _refused(project, tmp_path / "out", "--folds", "--fold-subset", "0,5")
    assert line == (f"error: {fold_folder(project.output_dir, 5)}: no such fold (--fold-subset names fold 5; "
                    "the cross-validation has folds 0 to 1)")


def test_a_fold_without_its_model_is_one_line(tmp_path: Path) -> None:
    project = cv_project(tmp_path / "p", [1, 2, 3])
    shutil.rmtree(fold_folder(project.output_dir, 1) / "models")
    line = _refused(project, tmp_path / "out", "--folds")
    assert line == (f"error: {fold_folder(project.output_dir, 1) / BEST_MODEL}: fold 1 has no trained model yet; "
                    f"train it (segkit train {project.source} --fold 1) or leave it out with --fold-subset")
    assert invoke("infer", project.source, "--quiet", "--out", tmp_path / "out", "--folds", "--fold-subset",
                  "0,2").exit_code == 0


def test_no_cross_validation_is_one_line(tmp_path: Path) -> None:
    project = cv_project(tmp_path / "p", [])
    line = _refused(project, tmp_path / "out", "--folds")
    assert line == (f"error: {project.output_dir / FOLD_PLAN}: no fold plan, so no cross-validation was trained "
                    f"there; train one with `segkit train {project.source} --folds K` first")


def test_a_planned_fold_not_trained_yet_is_one_line(tmp_path: Path) -> None:
    project = cv_project(tmp_path / "p", [1, 2])
    plan = plan_of(project)
    (project.output_dir / FOLD_PLAN).write_text(FoldPlan({}, {}, plan.folds * 2).to_json(), encoding="utf-8")
    line = _refused(project, tmp_path / "out", "--folds")  # folds 2 and 3 have no folder at all
    assert line == (f"error: {fold_folder(project.output_dir, 2) / BEST_MODEL}: fold 2 has no trained model yet; "
                    f"train it (segkit train {project.source} --fold 2) or leave it out with --fold-subset")


@pytest.mark.parametrize(("options", "expected"), [
    (("--folds", "--fold-subset", "0,x"), "error: --fold-subset: '0,x' is not a comma-separated list of fold "
                                          "numbers (write e.g. --fold-subset 0,2,4)"),
    (("--folds", "--fold-subset", "1,1"), "error: --fold-subset: '1,1' names a fold twice (name each fold once)"),
    (("--fold-subset", "0"), "error: --fold-subset: chooses folds of the ensemble; add --folds"),
])
def test_a_bad_subset_is_one_line(tmp_path: Path, options: tuple[str, ...], expected: str) -> None:
    project = cv_project(tmp_path / "p", [1, 2])
    assert _refused(project, tmp_path / "out", *options) == expected


def test_a_fold_trained_with_other_classes_is_one_line_naming_it(tmp_path: Path) -> None:
    project = cv_project(tmp_path / "p", [1, 2])
    record = fold_folder(project.output_dir, 1) / RESOLVED_PROJECT
    record.write_text(record.read_text().replace('name = "malignant"', 'name = "tumour"'), encoding="utf-8")
    line = _refused(project, tmp_path / "out", "--folds")
    assert line.startswith(f"error: {fold_folder(project.output_dir, 1) / BEST_MODEL}: was trained with classes = ")
    exported = invoke("export", project.source, "--folds", "--out", tmp_path / "sm")
    assert single_error_line(exported) == line and not (tmp_path / "sm").exists()



def figures(path: Path) -> dict[str, float]:
    rows = path.read_text(encoding="utf-8").splitlines()[1:]
    return {name: float(value) for name, value in (row.split(",") for row in rows)}


def test_eval_of_the_ensemble_of_identical_folds_scores_as_one_fold(tmp_path: Path) -> None:
    project = cv_project(tmp_path, [6, 6])
    single = invoke("eval", project.source, "--quiet", "--set", f"project.output_dir='{fold_folder(project.output_dir, 0)}'")
    assert single.exit_code == 0, single.output
    ensemble = invoke("eval", project.source, "--quiet", "--ensemble")
    assert ensemble.exit_code == 0, ensemble.output
    assert f"written {project.output_dir / 'ensemble' / 'evaluation.csv'}" in ensemble.output
    expected = figures(fold_folder(project.output_dir, 0) / "evaluation.csv")
    got = figures(project.output_dir / "ensemble" / "evaluation.csv")
    assert sorted(got) == sorted(expected) and len(expected) > 3
    assert all(got[name] == pytest.approx(expected[name], abs=1e-5) for name in expected), (got, expected)


def test_eval_of_the_ensemble_on_images_of_the_pool_is_one_line(tmp_path: Path) -> None:
    project = cv_project(tmp_path, [1, 2])
    pool = {f"img_{i:02d}": "g" for i in range(4)}  # the test split's stems: the folds trained on them
    plan = FoldPlan({}, pool, plan_of(project).folds)
    (project.output_dir / FOLD_PLAN).write_text(plan.to_json(), encoding="utf-8")
    before = snapshot(project.output_dir)
    line = single_error_line(invoke("eval", project.source, "--ensemble"))
    assert line == ("error: dataset.test: 'img_00', 'img_01', 'img_02' and 1 more are in the cross-validation's "
                    "pool, so the folds trained on them; score the ensemble on images no fold saw "
                    "(--set dataset.test.images=... --set dataset.test.masks=...)")
    assert snapshot(project.output_dir) == before
    both = single_error_line(invoke("eval", project.source, "--ensemble", "--folds"))
    assert both == ("error: --folds: scores each fold on its own held-out images; --ensemble (and --fold-subset) "
                    "score the ensemble on other images: give one of them")


def _in_region_dice(masks: list[Path], predictions: Path) -> float:
    """Nucleus-vs-not Dice summed over ``masks``, where the mask is not white (ignored)."""
    overlap = total = 0
    for path in masks:
        mask, predicted = (np.asarray(Image.open(p).convert("RGB")).astype(int) for p in (path, predictions / path.name))
        region = mask.sum(axis=2) != 3 * 255
        truth, found = (mask.sum(axis=2) > 0) & region, (predicted.sum(axis=2) > 0) & region
        overlap, total = overlap + 2 * int((truth & found).sum()), total + int(truth.sum() + found.sum())
    return overlap / total


def test_the_cross_validation_benchmark_keeps_its_outer_cores_out_of_every_fold(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "cv_ucsb.py"
    done = subprocess.run([sys.executable, str(script), "--smoke", "--folds", "2", "--test-cores", "1",
                           "--work", str(tmp_path)], env=environment(), capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    outer, pool = results["outer_cores"], results["pool_cores"]
    assert len(outer) == 1 and len(pool) == 5 and not set(outer) & set(pool)
    held_out = [stem for fold in results["plan"] for stem in fold["test"]]
    pool_stems = sorted(p.stem for p in (tmp_path / "pool").glob("*/masks/*.png"))
    assert sorted(held_out) == pool_stems  # every pool image held out by exactly one fold
    seen = {stem.split("_malignant")[0] for fold in results["plan"] for split in fold.values() for stem in split}
    assert seen == set(pool)  # no fold trained, validated or was scored on the outer core
    rows = results["folds"]
    assert results["cv_dice_mean"] == pytest.approx(sum(r["held_out_dice"] for r in rows) / len(rows))
    outer_masks = sorted((tmp_path / "outer" / "masks").glob("*.png"))
    every = results["outer"][-1]
    assert every["cores"] == "all" and every["images"] == len(outer_masks) == 2
    assert every["ensemble"] == pytest.approx(_in_region_dice(outer_masks, tmp_path / "pred" / "ensemble"))
    assert every["single"] == pytest.approx([_in_region_dice(outer_masks, tmp_path / "pred" / f"fold_{k}" / "outer")
                                             for k in range(2)])
    assert "ensemble − mean" in done.stdout and "the ensemble of 2" in done.stdout


def test_a_slide_segmented_by_the_ensemble_is_recorded_as_the_ensembles_and_redone_for_another_subset(
        tmp_path: Path) -> None:
    import json

    from segkit.cv.ensemble import ensemble_digest
    from slide_files import synthetic_slide, write_pyramid
    from test_slide_infer import SLIDES

    project = cv_project(tmp_path, [4, 5], model=dict(tiny_project()["model"], microns_per_pixel=0.5), slides=SLIDES)
    image, _, _ = synthetic_slide(256, 192, seed=3, tile=64, margin=32)
    slide, out = tmp_path / "slides" / "case.svs", tmp_path / "out"
    slide.parent.mkdir()
    write_pyramid(slide, image, style="aperio", microns_per_pixel=0.5, tile=64, levels=2)

    def recorded() -> str:
        return str(json.loads((out / "case.slide.json").read_text())["model_sha256"])

    first = invoke("infer", project.source, slide, "--out", out, "--quiet", "--folds")
    assert first.exit_code == 0, first.output
    assert recorded() == ensemble_digest(project, [0, 1]) != ensemble_digest(project, [0])
    again = invoke("infer", project.source, slide, "--out", out, "--folds")
    assert "already segmented by this model; skipped" in again.output, again.output
    subset = invoke("infer", project.source, slide, "--out", out, "--quiet", "--folds", "--fold-subset", "0")
    assert subset.exit_code == 0 and "skipped" not in subset.output, subset.output
    assert recorded() == ensemble_digest(project, [0])
