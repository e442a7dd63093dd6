"""A damaged or edited run state, a changed project, and a full disk at a checkpoint: one line each,
and the last good checkpoint stays the one ``--resume`` continues from."""

from __future__ import annotations

import errno
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_results import error_line, snapshot
from segkit_process import run_python, run_segkit
from tiny_data import write_tiny_project
from typer.testing import CliRunner

from segkit.cli.main import app
from segkit.durable import replace_durably
from segkit.engine.resume import SIGNAL_AFTER_EPOCH_ENV
from segkit.errors import RunStateError

runner = CliRunner()
EPOCHS = 3


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of the tiny project stopped (SIGTERM) after epoch 1 of 3."""
    project = write_tiny_project(tmp_path_factory.mktemp("interrupted"), epochs=EPOCHS, dropout_rate=0.1)
    result = run_segkit(["train", project, "--quiet"], **{SIGNAL_AFTER_EPOCH_ENV: "SIGTERM:1"})
    assert result.returncode == 143, result.stdout
    return project


@pytest.fixture
def copy(interrupted: Path, tmp_path: Path) -> Path:
    """The interrupted project and its run folder, copied so that a test may damage them."""
    shutil.copytree(interrupted.parent, tmp_path / "copy")
    return tmp_path / "copy" / interrupted.name


def _edit_state(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        path = run / "checkpoints" / "state.json"
        state = json.loads(path.read_text())
        change(state)
        path.write_text(json.dumps(state))
    return edit


def _truncate(run: Path) -> None:
    path = run / "checkpoints" / "last-0001.keras"
    path.write_bytes(path.read_bytes()[:2000])


DAMAGE = {
    "epoch-beyond-train-epochs": (_edit_state(lambda s: s.update(epoch=99, checkpoint="last-0099.keras")),
                                  "state.json: epoch 99 is beyond train.epochs = 3 (raise train.epochs"),
    "epoch-negative": (_edit_state(lambda s: s.update(epoch=-1)),
                       "state.json: epoch: expected a whole number of epochs >= 1, got -1"),
    "epoch-a-string": (_edit_state(lambda s: s.update(epoch="1")),
                       "state.json: epoch: expected a whole number of epochs >= 1, got '1'"),
    "epoch-missing": (_edit_state(lambda s: s.pop("epoch")),
                      "state.json: epoch: expected a whole number of epochs >= 1, got None"),
    "epoch-edited-alone": (_edit_state(lambda s: s.update(epoch=2)),
                           ("state.json: checkpoint: epoch 2 belongs with 'last-0002.keras', the state names "
                            "'last-0001.keras'")),
    "counters-not-numbers": (_edit_state(lambda s: s.update(callbacks={"best": {"best": "low"}})),
                             "state.json: callbacks: expected a table of the callbacks' numeric counters"),
    "seed-states-missing": (_edit_state(lambda s: s.pop("seed_states")),
                            "state.json: seed_states: expected a list of [int, int] random states, got None"),
    "state-not-json": (lambda run: (run / "checkpoints" / "state.json").write_bytes(b'{"epoch": 1,'),
                       "state.json: damaged, not JSON"),
    "state-a-list": (lambda run: (run / "checkpoints" / "state.json").write_text("[1]"),
                     "state.json: damaged, expected a JSON object, got list"),
    "checkpoint-truncated": (_truncate, "last-0001.keras: is not a complete .keras file (damaged or truncated)"),
    "checkpoint-garbage": (lambda run: (run / "checkpoints" / "last-0001.keras").write_bytes(b"\0" * 64),
                           "last-0001.keras: is not a complete .keras file"),
    "checkpoint-missing": (lambda run: (run / "checkpoints" / "last-0001.keras").unlink(),
                           "last-0001.keras: missing, but"),
}


@pytest.mark.parametrize("case", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_run_state_is_one_line(copy: Path, case: str) -> None:
    damage, expected = DAMAGE[case]
    run = copy.parent / "run"
    damage(run)
    before = snapshot(run)
    result = runner.invoke(app, ["train", str(copy), "--resume"])
    line = error_line(result.output, result.exit_code)
    assert expected in line and ("--overwrite" in line or "raise train.epochs" in line), line
    assert snapshot(run) == before


@pytest.mark.parametrize(("setting", "named"), [
    ("model.base_filters=6", "model.base_filters = 4 (project: 6)"),
    ("optimizer.learning_rate=0.5", "optimizer.learning_rate = 0.01 (project: 0.5)"),
    ("model.image_width=32", "model.image_width = 64 (project: 32)"),
    ("train.batch_size=2", "train.batch_size = 4 (project: 2)"),
    ("classes.2.name='tumour'", "classes = "),
])
def test_resume_refuses_a_changed_project_naming_the_key(interrupted: Path, setting: str, named: str) -> None:
    run = interrupted.parent / "run"
    before = snapshot(run)
    result = runner.invoke(app, ["train", str(interrupted), "--resume", "--set", setting])
    line = error_line(result.output, result.exit_code)
    assert f"run: the run was trained with {named}" in line and "--resume continues only the same settings" in line
    assert snapshot(run) == before


def test_the_refusal_comes_before_tensorflow(interrupted: Path) -> None:
    script = ("import sys\nfrom segkit.cli.main import main\ntry:\n    main()\nexcept SystemExit as exit:\n"
              "    print('tensorflow' in sys.modules, exit.code)\n")
    result = run_python(script, ["train", interrupted, "--resume", "--set", "model.num_layers=2"])
    assert "the run was trained with model.num_layers = 3 (project: 2)" in result.stdout
    assert result.stdout.splitlines()[-1] == "False 2", result.stdout


def test_a_full_disk_at_a_checkpoint_keeps_the_last_good_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    project = write_tiny_project(tmp_path, epochs=2)
    run = tmp_path / "run"
    save = keras.Model.save
    epoch_1: dict[str, bytes] = {}

    def full_at_epoch_2(model: Any, path: Any, *args: Any, **kwargs: Any) -> None:
        if "last-0001" in str(path):  # the best model of epoch 1 was written before its checkpoint
            epoch_1["best"] = (run / "models" / "best_model.keras").read_bytes()
        elif epoch_1:  # the disk fills up part way through the first file epoch 2 writes
            Path(path).write_bytes(b"PK half a file")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        save(model, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", full_at_epoch_2)
    result = runner.invoke(app, ["train", str(project), "--quiet"])
    line = error_line(result.output, result.exit_code)
    assert line == (f"error: {run}: cannot write the run there, the disk is full (No space left on device); free "
                    "space on that disk or set project.output_dir to another folder (an interrupted run's last "
                    "checkpoint is kept: continue it with --resume)")
    assert not list(run.rglob("*.tmp*"))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last-0001.keras", "state.json"]
    assert zipfile.is_zipfile(run / "checkpoints" / "last-0001.keras")
    assert (run / "models" / "best_model.keras").read_bytes() == epoch_1["best"]
    monkeypatch.setattr(keras.Model, "save", save)
    resumed = runner.invoke(app, ["train", str(project), "--quiet", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert len((run / "eval" / "train_losses.csv").read_text().splitlines()) == 3
    assert json.loads((run / "checkpoints" / "state.json").read_text())["checkpoint"] == "last-0002.keras"


READ_ONLY = "it is not writable (Read-only file system); make it writable or set project.output_dir"


@pytest.mark.parametrize(("number", "what"), [(errno.EROFS, READ_ONLY), (errno.EDQUOT, "the disk is full")])
def test_a_refused_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path, number: int, what: str) -> None:
    target = tmp_path / "checkpoints" / "state.json"
    target.parent.mkdir()
    target.write_text("the old state")

    def refused(temporary: Path) -> None:
        temporary.write_text("half")
        raise OSError(number, os.strerror(number), str(temporary))

    with pytest.raises(RunStateError) as caught:
        replace_durably(target, refused, tmp_path)
    assert str(caught.value).startswith(f"{tmp_path}: cannot write the run there, {what}")
    assert ".tmp" not in str(caught.value)
    assert target.read_text() == "the old state" and sorted(p.name for p in target.parent.iterdir()) == ["state.json"]
