"""The real UCSB breast-cancer-cell images in ../shared/data/bcc-mini, through the CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image
from shared_data import shared_data
from typer.testing import CliRunner

from segkit.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _settings(data: Path, run: Path) -> list[str]:
    values = [f"project.output_dir={run}", "model.image_width=64", "model.image_height=64", "model.num_layers=3",
              "model.base_filters=4", "optimizer.learning_rate=0.01", "train.epochs=2", "train.batch_size=2", f"callbacks.0.images={data}/images",
              "callbacks.0.count=2", f"infer.images={data}/images"]
    for split in ("train", "valid", "test"):
        values += [f"dataset.{split}.images={data}/images", f"dataset.{split}.masks={data}/masks"]
    return [arg for value in values for arg in ("--set", value)]


def test_train_eval_infer_on_bcc_mini(tmp_path: Path) -> None:
    data = shared_data("bcc-mini")
    run = tmp_path / "run"
    project = str(ROOT / "projects" / "breast-cancer-cell.toml")
    trained = runner.invoke(app, ["train", project, "--quiet", *_settings(data, run)])
    assert trained.exit_code == 0, trained.output
    # bcc-mini masks carry JPEG-like colour noise near the class colours: reported once, not fatal
    assert "mask pixels in" in trained.output and "farther than 60" in trained.output
    with (run / "eval" / "train_losses.csv").open() as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2"]
    evaluated = runner.invoke(app, ["eval", project, *_settings(data, run)])
    assert evaluated.exit_code == 0, evaluated.output
    with (run / "evaluation.csv").open() as handle:
        figures = {row["metric"]: float(row["value"]) for row in csv.DictReader(handle)}
    # ~98% of pixels are background: the reference Dice is high even when the foreground is not
    assert figures["dice_background"] > 0.9
    assert figures["dice_coef_multiclass"] > figures["mean_foreground_dice"]
    inferred = runner.invoke(app, ["infer", project, *_settings(data, run)])
    assert inferred.exit_code == 0, inferred.output
    masks = sorted((run / "infer").glob("*.png"))  # beside them, the manifest of what infer wrote
    assert len(masks) == 24
    first = Image.open(masks[0])
    assert first.size == (512, 512)  # the original size, not the 64x64 the model ran at
    assert {tuple(c) for c in np.asarray(first.convert("RGB")).reshape(-1, 3)} <= {(0, 0, 0), (0, 255, 0), (255, 0, 0)}
    assert len(list((run / "infer_overlay").glob("*.png"))) == 24
