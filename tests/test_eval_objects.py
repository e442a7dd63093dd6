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
from segkit.classes import IGNORE_INDEX
from segkit.errors import DataError
from segkit.run_folder import EVALUATION, EVALUATION_PER_IMAGE, REPLACED, RUN_MARKER, finish_run, start_run
from cli_results import invoke, single_error_line, snapshot
from tiny_data import COLOURS, HEADER, tiny_project, write_tiny_project

WHITE = (255, 255, 255)
#: the pixel rows of the tiny project's evaluation.csv, in their order
PIXEL_ROWS = ["dice_crossentropy", "dice_coef_multiclass", "mean_foreground_dice", "dice_background", "dice_benign",
              "dice_malignant", "iou_background", "iou_benign", "iou_malignant"]
#: the object figures of one group (overall, or one class with ``_<class>``)
FIGURES = ["object_precision", "object_recall", "object_f1", "aji", "dq", "sq", "pq"]


def _document(**changes: Any) -> dict[str, Any]:
    """The tiny project trained here: one epoch, white marks pixels to ignore (no tiny mask has white)."""
    return tiny_project(epochs=1, mask={"ignore_color": list(WHITE)}, **changes)


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
