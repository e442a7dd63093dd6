"""End to end through the CLI: train 2 epochs, eval, infer, and check what was written."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from segkit_training.epoch_change import titled
from tiny_data import write_tiny_project
from typer.testing import CliRunner

from segkit import toml_io
from segkit.cli.main import app
from segkit.report.charts import metric_panels

runner = CliRunner()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny project trained once for the tests of this module."""
    project = write_tiny_project(tmp_path_factory.mktemp("workflow"), epochs=5)
    result = runner.invoke(app, ["train", str(project), "--set", "train.epochs=2"])
    assert result.exit_code == 0, result.output
    assert "best val_loss" in result.output
    return project


def test_train_writes_histories_plots_model_and_resolved_project(trained: Path) -> None:
    run = trained.parent / "run"
    losses = _rows(run / "eval" / "train_losses.csv")
    assert [r["epoch"] for r in losses] == ["1", "2"]
    assert all(float(r["loss"]) > 0 and float(r["val_loss"]) > 0 for r in losses)
    assert float(losses[0]["learning_rate"]) == pytest.approx(0.01)
    metrics = _rows(run / "eval" / "train_metrics.csv")
    assert list(metrics[0])[:3] == ["epoch", "dice_coef_multiclass", "mean_foreground_dice"]
    for column in ("dice_background", "dice_benign", "dice_malignant", "iou_malignant", "val_mean_foreground_dice"):
        assert all(0.0 <= float(r[column]) <= 1.0 for r in metrics), column
    for png in ("train_losses.png", "train_metrics.png"):
        assert Image.open(run / "eval" / png).size[0] > 300
    (dice_panel,) = metric_panels(list(metrics[0])[1:])  # no plugin metric here: the Dice panel alone
    assert {"mean_foreground_dice", "dice_benign", "dice_malignant", "val_dice_malignant"} <= set(dice_panel[1])
    resolved = toml_io.loads((run / "project.resolved.toml").read_text())
    assert resolved["train"]["epochs"] == 2  # the --set value, not the file's 5
    assert resolved["model"]["dilation"] == [1, 1]
    assert (run / "models" / "best_model.keras").stat().st_size > 10_000


def test_epoch_change_images_and_montage_use_class_colours(trained: Path) -> None:
    folder = trained.parent / "run" / "epoch_change_infer"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["epoch_001_img_00.png", "epoch_001_img_01.png", "epoch_001_montage.png",
                     "epoch_002_img_00.png", "epoch_002_img_01.png", "epoch_002_montage.png"]
    mask = np.asarray(Image.open(folder / "epoch_002_img_00.png").convert("RGB"))
    assert mask.shape == (64, 64, 3)
    assert {tuple(c) for c in mask.reshape(-1, 3)} <= {(0, 0, 0), (0, 255, 0), (255, 0, 0)}


def test_epoch_change_montage_is_titled_with_its_epoch_and_shows_the_ground_truth(trained: Path) -> None:
    folder, test_split = trained.parent / "run" / "epoch_change_infer", trained.parent / "data" / "test"
    first, second = (np.asarray(Image.open(folder / f"epoch_00{e}_montage.png").convert("RGB")) for e in (1, 2))
    band = second.shape[0] - (3 * 64 + 2 * 4)  # rows: input, ground truth, prediction; 4-px gaps
    assert second.shape[1] == 64 * 2 + 4 and first.shape == second.shape and 8 <= band <= 32
    for column, stem in enumerate(("img_00", "img_01")):
        left = column * (64 + 4)
        image = np.asarray(Image.open(test_split / "images" / f"{stem}.png").convert("RGB"))
        truth = np.asarray(Image.open(test_split / "masks" / f"{stem}.png").convert("RGB"))
        assert np.array_equal(second[band : band + 64, left : left + 64], image)
        assert np.array_equal(second[band + 68 : band + 132, left : left + 64], truth)
    title = second[:band]
    assert (title.max(axis=2) < 128).sum() > 20 and not np.array_equal(title, first[:band])
    assert np.array_equal(title, titled(np.zeros((0, second.shape[1], 3), np.uint8), "epoch 2"))


def test_eval_writes_every_figure(trained: Path) -> None:
    result = runner.invoke(app, ["eval", str(trained)])
    assert result.exit_code == 0, result.output
    rows = {r["metric"]: float(r["value"]) for r in _rows(trained.parent / "run" / "evaluation.csv")}
    assert list(rows)[:3] == ["categorical_crossentropy", "dice_coef_multiclass", "mean_foreground_dice"]
    assert {"dice_background", "dice_benign", "dice_malignant", "iou_background", "iou_benign",
            "iou_malignant"} <= set(rows)
    assert rows["categorical_crossentropy"] > 0
    assert rows["mean_foreground_dice"] == pytest.approx((rows["dice_benign"] + rows["dice_malignant"]) / 2, abs=1e-5) \
        or rows["mean_foreground_dice"] in (rows["dice_benign"], rows["dice_malignant"])
    assert "mean_foreground_dice" in result.output


def test_infer_keeps_original_sizes_and_writes_overlays(trained: Path) -> None:
    result = runner.invoke(app, ["infer", str(trained)])
    assert result.exit_code == 0, result.output
    out = trained.parent / "run" / "infer"
    overlays = trained.parent / "run" / "infer_overlay"
    sources = sorted((trained.parent / "data" / "infer").iterdir())
    for source in sources:
        mask = Image.open(out / source.name)
        assert mask.size == Image.open(source).size
        colours = {tuple(c) for c in np.asarray(mask.convert("RGB")).reshape(-1, 3)}
        assert colours <= {(0, 0, 0), (0, 255, 0), (255, 0, 0)}
        overlay = np.asarray(Image.open(overlays / source.name).convert("RGB"))
        original = np.asarray(Image.open(source).convert("RGB"))
        background = np.all(np.asarray(mask.convert("RGB")) == 0, axis=2)
        assert np.array_equal(overlay[background], original[background])


def test_infer_in_chunks_of_one_writes_the_same_masks(trained: Path, tmp_path: Path) -> None:
    """Reading, predicting and writing overlap chunk by chunk; every image still gets its own mask."""
    whole = trained.parent / "run" / "infer"
    if not whole.is_dir():
        assert runner.invoke(app, ["infer", str(trained)]).exit_code == 0
    result = runner.invoke(app, ["infer", str(trained), "--set", "infer.batch_size=1",
                                 "--set", f"infer.output='{(tmp_path / 'one').as_posix()}'"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in whole.iterdir() if p.name != ".segkit-outputs.json")  # infer's own manifest
    assert sorted(p.name for p in (tmp_path / "one").iterdir() if p.name != ".segkit-outputs.json") == names
    assert len(names) == 3
    for name in names:
        a = np.asarray(Image.open(whole / name).convert("RGB"))
        b = np.asarray(Image.open(tmp_path / "one" / name).convert("RGB"))
        assert a.shape == b.shape
        # batch size may move a float in the last place; a label may flip where classes tie
        assert np.mean(np.all(a == b, axis=2)) > 0.995
        assert (tmp_path / "one_overlay" / name).stat().st_size > 0


def test_train_refuses_to_clobber_a_run(trained: Path) -> None:
    before = (trained.parent / "run" / "models" / "best_model.keras").read_bytes()
    result = runner.invoke(app, ["train", str(trained), "--set", "train.epochs=1"])
    assert result.exit_code == 2
    assert "already holds a run; pass --resume to continue it, --overwrite to replace it" in result.output
    assert "Traceback" not in result.output
    assert (trained.parent / "run" / "models" / "best_model.keras").read_bytes() == before


def test_eval_refuses_a_model_for_other_classes(trained: Path) -> None:
    result = runner.invoke(app, ["eval", str(trained), "--set", "classes.2.name=tumour",
                                 "--set", "model.image_width=32"])
    assert result.exit_code == 2
    assert ("best_model.keras: was trained with classes = [background [0, 0, 0], benign [0, 255, 0], malignant "
            "[255, 0, 0]] (project: [background [0, 0, 0], benign [0, 255, 0], tumour [255, 0, 0]]), "
            "model.image_width = 64 (project: 32)") in result.output
