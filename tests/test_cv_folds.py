"""Grouped cross-validation: the fold plan (no TensorFlow), training and resuming folds, the summary, bad input."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cli_results import invoke, single_error_line, snapshot
from tiny_data import HEADER, blob_pair, tiny_project

from segkit import toml_io
from segkit.cv.layout import FOLD_PLAN, fold_folder
from segkit.cv.plan import deal_groups, make_plan

CORES = "ABCDEF"
SETTINGS = {"folds": 3, "group_by": "regex", "group_regex": None, "groups_csv": None, "seed": 0, "stratify": True}


def _layout(rng: random.Random) -> tuple[dict[str, str], dict[str, int]]:
    """A random pool: 4-12 groups of 1-5 images, each image of a random majority class."""
    groups, strata = {}, {}
    for g in range(rng.randint(4, 12)):
        for i in range(rng.randint(1, 5)):
            stem = f"g{g}_{i}"
            groups[stem], strata[stem] = f"g{g}", rng.randint(0, 2)
    return groups, strata


@pytest.mark.parametrize("seed", range(200))
def test_no_group_is_split_and_every_image_is_held_out_once(seed: int) -> None:
    rng = random.Random(seed)
    groups, strata = _layout(rng)
    k = rng.randint(2, min(5, len(set(groups.values())) - 1))
    plan = make_plan({**SETTINGS, "folds": k, "seed": seed}, groups, strata)
    held_out = [stem for fold in plan.folds for stem in fold["test"]]
    assert sorted(held_out) == sorted(groups)  # every image exactly once
    for fold in plan.folds:
        assert fold["test"] and fold["valid"] and fold["train"]
        assert set(fold["test"]) | set(fold["valid"]) | set(fold["train"]) == set(groups)
        used = [{groups[s] for s in fold[split]} for split in ("train", "valid", "test")]
        assert not (used[0] & used[1] or used[0] & used[2] or used[1] & used[2])  # no group in two splits
    folds_of_group: dict[str, set[int]] = {}
    for index, fold in enumerate(plan.folds):
        for stem in fold["test"]:
            folds_of_group.setdefault(groups[stem], set()).add(index)
    assert all(len(found) == 1 for found in folds_of_group.values())  # no group in two folds
    assert len({fold["test"] for fold in plan.folds}) == k  # the folds differ


def test_the_plan_is_the_same_for_a_seed_and_another_for_another() -> None:
    groups, strata = _layout(random.Random(5))
    first, again = (make_plan(SETTINGS, groups, strata) for _ in range(2))
    other = [make_plan({**SETTINGS, "seed": seed}, groups, strata).folds for seed in range(1, 6)]
    assert first.folds == again.folds
    assert any(folds != first.folds for folds in other)


def test_stratifying_deals_each_class_over_the_folds() -> None:
    # 6 single-image groups, 3 of class 1 and 3 of class 2: three folds get one of each
    members = {f"g{i}": [f"s{i}"] for i in range(6)}
    strata = {f"s{i}": 1 + i % 2 for i in range(6)}
    for seed in range(20):
        parts = deal_groups(members, strata, 3, seed)
        assert sorted(sorted(strata[members[g][0]] for g in part) for part in parts) == [[1, 2]] * 3


# --- the CLI on a tiny pool: 12 images of 6 cores, one split ------------------------------------------------------

def _cv_project(root: Path, **cv: Any) -> Path:
    for folder in ("images", "masks"):
        (root / "data" / "pool" / folder).mkdir(parents=True, exist_ok=True)
    for index, core in enumerate(CORES):
        for i in range(2):
            image, mask = blob_pair(10 * index + i)
            Image.fromarray(image).save(root / "data" / "pool" / "images" / f"core{core}_{i}.png")
            Image.fromarray(mask).save(root / "data" / "pool" / "masks" / f"core{core}_{i}.png")
    pool = {"images": "data/pool/images", "masks": "data/pool/masks"}
    document = tiny_project(epochs=1, dataset={"name": "categorized-masks", "train": pool}, callbacks=[],
                            cv={"group_by": "regex", "group_regex": "^(core[A-F])_", **cv})
    project = root / "tiny.toml"
    project.write_text(HEADER + toml_io.dumps(document), encoding="utf-8")
    return project


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_train_and_eval_folds_resume_the_right_fold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import segkit.engine.train as engine

    project, run = _cv_project(tmp_path), tmp_path / "run"
    real = engine.train

    def stop_at_fold_1(folded: Any, *args: Any, **kwargs: Any) -> Any:
        if folded.output_dir == fold_folder(run, 1):
            raise KeyboardInterrupt  # Ctrl-C before fold 1's first epoch
        return real(folded, *args, **kwargs)

    monkeypatch.setattr(engine, "train", stop_at_fold_1)
    first = invoke("train", project, "--folds", 2, "--quiet")
    assert first.exit_code == 130, first.output
    plan = json.loads((run / FOLD_PLAN).read_text())
    assert (fold_folder(run, 0) / "models" / "best_model.keras").is_file()
    assert not (fold_folder(run, 1) / "models").exists()
    fold_0 = snapshot(fold_folder(run, 0) / "models") | snapshot(fold_folder(run, 0) / "eval")

    monkeypatch.setattr(engine, "train", real)
    resumed = invoke("train", project, "--folds", 2, "--resume", "--quiet")
    assert resumed.exit_code == 0, resumed.output
    assert "fold 0: finished earlier, skipped" in resumed.output
    assert snapshot(fold_folder(run, 0) / "models") | snapshot(fold_folder(run, 0) / "eval") == fold_0
    assert (fold_folder(run, 1) / "models" / "best_model.keras").is_file()
    assert json.loads((run / FOLD_PLAN).read_text()) == plan  # reused, not planned again
    for index, fold in enumerate(plan["folds"]):  # each fold trained on its own images only
        resolved = toml_io.loads((fold_folder(run, index) / "project.resolved.toml").read_text())
        assert resolved["cv"]["folds"] == 2
        assert set(fold["test"]).isdisjoint(fold["train"] + fold["valid"])

    evaluated = invoke("eval", project, "--folds", "--quiet")
    assert evaluated.exit_code == 0, evaluated.output
    rows = _rows(run / "cv_summary.csv")
    assert [row["fold"] for row in rows] == ["0", "1", "mean", "sd", "pooled"]
    assert [int(row["images"]) for row in rows[:2]] == [len(fold["test"]) for fold in plan["folds"]]
    metrics = [name for name in rows[0] if name not in ("fold", "images")]
    assert "dice_coef_multiclass" in metrics
    for name in metrics:
        values = [float(row[name]) for row in rows[:2]]
        if not any(math.isnan(v) for v in values):
            assert float(rows[2][name]) == pytest.approx(float(np.mean(values)), abs=1e-6)
            assert float(rows[3][name]) == pytest.approx(float(np.std(values, ddof=1)), abs=1e-6)
    for index in range(2):  # each fold's row is its own evaluation.csv
        own = {row["metric"]: row["value"] for row in _rows(fold_folder(run, index) / "evaluation.csv")}
        assert float(rows[index]["dice_coef_multiclass"]) == pytest.approx(float(own["dice_coef_multiclass"]))
    assert (run / "cv_summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _refused(project: Path, *args: object) -> str:
    run = project.parent / "run"
    before = snapshot(run)
    line = single_error_line(invoke(*args))
    assert snapshot(run) == before  # nothing written, nothing lost
    return line


def test_more_folds_than_groups_is_one_line(tmp_path: Path) -> None:
    project = _cv_project(tmp_path)
    line = _refused(project, "train", project, "--folds", 7)
    assert line == ("error: cv.folds: 7 folds, but the 12 images fall into 6 group(s) (group_by = 'regex'), and a "
                    "group is never split; use at most 6 folds")


def test_a_regex_matching_nothing_or_leaving_stems_out_is_one_line(tmp_path: Path) -> None:
    project = _cv_project(tmp_path, group_regex="^(patient\\d+)")
    assert "matches none of the 12 image stems (e.g. 'coreA_0', 'coreA_1', 'coreB_0' and 9 more)" in _refused(
        project, "train", project, "--folds", 2)
    project = _cv_project(tmp_path, group_regex="^(core[A-D])_")
    assert "leaves 4 image stem(s) without a group: 'coreE_0', 'coreE_1', 'coreF_0' and 1 more" in _refused(
        project, "train", project, "--folds", 2)


def test_groups_csv_missing_stems_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "groups.csv").write_text("stem,group\n" + "".join(f"core{c}_0,{c}\ncore{c}_1,{c}\n" for c in "ABCDE"))
    project = _cv_project(tmp_path, group_by="csv", groups_csv="groups.csv")
    line = _refused(project, "train", project, "--folds", 2)
    assert line.endswith("groups.csv: no group for 2 image stem(s): 'coreF_0', 'coreF_1'; add a stem,group row "
                         "for every image")


def test_fold_out_of_range_is_one_line(tmp_path: Path) -> None:
    project = _cv_project(tmp_path)
    line = single_error_line(invoke("train", project, "--folds", 2, "--fold", 2))
    assert line == "error: --fold 2: the cross-validation has folds 0 to 1; pass one of them"
    line = single_error_line(invoke("train", project, "--fold", 0, "--set", "cv.group_by=image"))
    assert line == "error: --fold 0: the project has no cross-validation; pass --folds K or set [cv] folds"


def test_a_plan_that_no_longer_matches_the_data_is_one_line(tmp_path: Path) -> None:
    project = _cv_project(tmp_path)
    run = tmp_path / "run"
    groups = {f"core{c}_{i}": f"core{c}" for c in CORES for i in range(2)}
    settings = {**SETTINGS, "folds": 2, "group_regex": "^(core[A-F])_", "seed": 7}
    run.mkdir()
    (run / FOLD_PLAN).write_text(make_plan(settings, groups, dict.fromkeys(groups, 0)).to_json())
    fold_0 = fold_folder(run, 0) / "models"
    fold_0.mkdir(parents=True)
    (fold_0 / "best_model.keras").write_bytes(b"trained")  # stands for a trained fold: it must survive
    for path in (tmp_path / "data" / "pool" / "images" / "coreF_1.png", tmp_path / "data" / "pool" / "masks" /
                 "coreF_1.png"):
        path.unlink()
    line = _refused(project, "train", project, "--folds", 2, "--resume")
    assert line == (f"error: {run / FOLD_PLAN}: the fold plan no longer matches the data: image(s) removed since it "
                    "was made: coreF_1; the trained folds were kept (put the data and [cv] back, or train every "
                    "fold again with --overwrite)")
    line = _refused(project, "train", project, "--folds", 3, "--resume")
    assert "the fold plan was made with folds = 2 (project: 3)" in line
