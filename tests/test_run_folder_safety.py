"""``segkit train`` never deletes what it did not write, and never loses an earlier run.

An output folder may be any folder, the user's dataset root included. ``--overwrite`` replaces only
what a segkit run wrote (its marker lists it; an unmarked folder must hold exactly the old run
layout), and only once the new run has checkpointed an epoch: a run that fails before that puts
the earlier one back byte for byte. Trainings are one epoch of the tiny 64x64 project.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from pathlib import Path

import pytest
from typer.testing import Result

from segkit.run_folder import REPLACED, RUN_ENTRIES, RUN_MARKER
from segkit.run_lock import LOCK, run_folder_lock
from cli_results import invoke, snapshot, trained_tiny_project
from segkit_process import output_of, run_segkit, start_python
from tiny_data import write_tiny_project


def error_lines(result: Result) -> list[str]:
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    return [line for line in result.output.splitlines() if line.startswith("error: ")]


def not_a_run(folder: Path, foreign: str) -> str:
    return (f"error: {folder}: holds {foreign}, which no segkit run wrote, so it does not look like a segkit run "
            "folder; nothing was changed (set project.output_dir to a folder of its own)")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project with one real epoch trained into ``run/``."""
    return trained_tiny_project(tmp_path_factory.mktemp("trained"))


@pytest.fixture
def earlier_run(trained: Path, tmp_path: Path) -> Path:
    """A copy of the trained project folder, its run included."""
    shutil.copytree(trained.parent, tmp_path / "copy")
    return tmp_path / "copy" / trained.name


# ------------------------------------------------------------------- a folder that is not a run


@pytest.mark.parametrize("flags", [["--overwrite"], []], ids=["overwrite", "plain"])
def test_a_dataset_root_as_output_folder_is_refused_untouched(tmp_path: Path, flags: list[str]) -> None:
    """Issue 31 family 1: ``--overwrite`` into the dataset root deleted the user's eval/ and models/."""
    project = write_tiny_project(tmp_path, epochs=1)
    shutil.copytree(tmp_path / "data" / "test" / "images", tmp_path / "eval")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "reference.keras").write_bytes(b"the user's own model")
    before = snapshot(tmp_path)
    result = invoke("train", project, "--set", f"project.output_dir={tmp_path}", *flags)
    assert result.exit_code == 2, result.output
    assert error_lines(result) == [not_a_run(tmp_path, "models/")]
    assert snapshot(tmp_path) == before


def test_an_unmarked_run_with_a_users_file_inside_is_refused(earlier_run: Path) -> None:
    """A run of the code before markers is recognised by its layout; one file that is not segkit's stops it."""
    run = earlier_run.parent / "run"
    (run / RUN_MARKER).unlink()
    (run / "eval" / "notes.txt").write_text("my annotations of the losses\n", encoding="utf-8")
    before = snapshot(run)
    result = invoke("train", earlier_run, "--overwrite")
    assert result.exit_code == 2, result.output
    assert error_lines(result) == [not_a_run(run, "eval/notes.txt")]
    assert snapshot(run) == before


# ----------------------------------------------------- an --overwrite run that fails puts the old run back


FAILURES = {
    # found by Keras when the model is built, after the run folder was claimed
    "model-key": (["--set", "model.activation=no_such_activation"],
                  r"^error: .*tiny\.toml: model: activation 'no_such_activation' is not a Keras activation$"),
    # found by the epoch-change callback when training begins
    "preview-folder": (["--set", "callbacks.0.images=data/no_such_folder"],
                       r"^error: .*/data/no_such_folder: does not exist; point the project at the folder that holds the images$"),
}


@pytest.mark.parametrize("failure", FAILURES, ids=list(FAILURES))
@pytest.mark.parametrize("marked", [True, False], ids=["marked", "unmarked"])
def test_a_failed_overwrite_leaves_the_earlier_run_byte_identical(earlier_run: Path, failure: str,
                                                                  marked: bool) -> None:
    run = earlier_run.parent / "run"
    if not marked:  # as the code before run markers left it
        (run / RUN_MARKER).unlink()
    before = snapshot(run)
    assert {"models/best_model.keras", "eval/train_losses.csv", "project.resolved.toml"} <= set(before)
    overrides, message = FAILURES[failure]
    result = invoke("train", earlier_run, "--overwrite", "--quiet", *overrides)
    assert result.exit_code == 2, result.output
    errors = error_lines(result)
    assert len(errors) == 1 and re.match(message, errors[0]), result.output
    assert snapshot(run) == before
    assert not (run / REPLACED).exists()


def test_an_overwrite_killed_before_its_first_checkpoint_is_undone_by_the_next_run(earlier_run: Path) -> None:
    """A process killed after moving the earlier run aside: the next train puts it back first."""
    run = earlier_run.parent / "run"
    before = snapshot(run)
    (run / REPLACED).mkdir()
    for name in [*RUN_ENTRIES, RUN_MARKER]:
        if (run / name).exists():
            (run / name).rename(run / REPLACED / name)
    (run / "eval").mkdir()  # what the killed run had written: no checkpoint yet
    (run / "eval" / "train_losses.csv").write_text("epoch,loss\n", encoding="utf-8")
    (run / RUN_MARKER).write_text(json.dumps({"segkit_run": 1, "entries": list(RUN_ENTRIES)}), encoding="utf-8")
    result = invoke("train", earlier_run, "--overwrite", "--set", "model.activation=no_such_activation")
    assert result.exit_code == 2, result.output
    assert f"note: put back the run in {run / REPLACED}" in result.output.replace("\n", " ")
    assert snapshot(run) == before


def test_a_successful_overwrite_replaces_the_earlier_run(earlier_run: Path) -> None:
    run = earlier_run.parent / "run"
    old_model = (run / "models" / "best_model.keras").read_bytes()
    (run / "eval" / "stale_from_the_old_run.csv").write_text("x\n", encoding="utf-8")  # an entry the old run owned
    result = invoke("train", earlier_run, "--overwrite", "--quiet", "--set", "optimizer.learning_rate=0.002")
    assert result.exit_code == 0, result.output
    assert (run / "models" / "best_model.keras").read_bytes() != old_model
    assert not (run / "eval" / "stale_from_the_old_run.csv").exists()
    assert not (run / REPLACED).exists()
    entries = json.loads((run / RUN_MARKER).read_text(encoding="utf-8"))["entries"]
    assert sorted(entries) == sorted(RUN_ENTRIES)


def test_a_resume_with_nothing_to_resume_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    project = write_tiny_project(tmp_path, epochs=1)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "mine.txt").write_text("a user's file\n", encoding="utf-8")
    result = invoke("train", project, "--resume", "--quiet")
    assert result.exit_code == 2, result.output
    expected = f"error: {tmp_path / 'run'}: no resumable checkpoint (checkpoints/state.json); train without --resume"
    assert error_lines(result) == [expected]
    assert snapshot(tmp_path / "run") == {"mine.txt": b"a user's file\n"}


# ------------------------------------------------------------------------ one process at a time

HOLD_LOCK = """
import sys
from pathlib import Path
from segkit.run_lock import run_folder_lock
with run_folder_lock(Path(sys.argv[1]), "train", print):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_a_second_train_in_a_locked_folder_is_refused(tmp_path: Path) -> None:
    """Issue 31 family 2: two trains into one folder both "succeeded"; the second is now refused."""
    project = write_tiny_project(tmp_path, epochs=1)
    run = tmp_path / "run"
    holder = start_python(HOLD_LOCK, [run], stderr_apart=True, with_stdin=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        held = json.loads((run / LOCK).read_text(encoding="utf-8"))
        assert (held["pid"], held["host"]) == (holder.pid, socket.gethostname())
        expected = (f"error: {run}: in use by another segkit process (PID {holder.pid} on host {held['host']}, "
                    f"segkit train since {held['started']}); wait for it to finish or set project.output_dir to "
                    f"another folder (if that process is gone, delete {run / LOCK})")
        second = run_segkit(["train", project, "--quiet"])
        assert second.returncode == 2, output_of(second)
        assert [line for line in second.stdout.splitlines() if line.startswith("error")] == [expected]
        assert sorted(p.name for p in run.iterdir()) == [LOCK]  # the second wrote nothing
        evaluation = invoke("eval", project)
        assert evaluation.exit_code == 2 and error_lines(evaluation) == [expected], evaluation.output
    finally:
        holder.communicate("done\n", timeout=30)
    assert holder.returncode == 0 and not (run / LOCK).exists()


def dead_pid() -> int:
    process = start_python("pass")
    process.wait()
    return process.pid


def test_a_stale_lock_is_taken_over_with_a_note(tmp_path: Path) -> None:
    project = write_tiny_project(tmp_path, epochs=1)
    run = tmp_path / "run"
    run.mkdir()
    pid = dead_pid()
    stale = {"pid": pid, "host": socket.gethostname(), "command": "train", "started": "2026-01-01T00:00:00+0000"}
    (run / LOCK).write_text(json.dumps(stale), encoding="utf-8")
    result = invoke("train", project, "--quiet")
    assert result.exit_code == 0, result.output
    note = (f"note: {run}: took over the lock of a segkit process that is gone (PID {pid} on host "
            f"{socket.gethostname()}, segkit train since 2026-01-01T00:00:00+0000)")
    assert note in result.output.splitlines()
    assert (run / "models" / "best_model.keras").is_file() and not (run / LOCK).exists()


def test_a_reused_pid_does_not_keep_a_lock(tmp_path: Path) -> None:
    """A live PID whose process started after the lock was written is not the lock's owner."""
    held = {"pid": os.getpid(), "host": socket.gethostname(), "command": "train", "started": "then",
            "process_start": "1"}
    (tmp_path / LOCK).write_text(json.dumps(held), encoding="utf-8")
    notes: list[str] = []
    with run_folder_lock(tmp_path, "eval", notes.append):
        assert json.loads((tmp_path / LOCK).read_text(encoding="utf-8"))["command"] == "eval"
    assert len(notes) == 1 and f"PID {os.getpid()} on host" in notes[0]
    assert not (tmp_path / LOCK).exists()


# ------------------------------------------------------------------------ a loss that is not a number

#: a callback plugin that turns every weight into NaN when its epoch begins: the next loss is NaN
POISON_PLUGIN = '''
import math
import segkit
from segkit.options import Option
from segkit.specs import CallbackSpec


def build(request):
    import keras

    class Poison(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch + 1 == request.options["epoch"]:
                for weight in self.model.trainable_weights:
                    weight.assign(keras.ops.full(weight.shape, math.nan))

    return Poison()


@segkit.hookimpl
def segkit_callbacks():
    return [CallbackSpec("poison-weights", "weights become NaN", build, (Option("epoch", "int", 2),))]
'''


def poison_site(folder: Path) -> Path:
    """A folder with the fake distribution ``poison-weights`` (module and entry point) in it."""
    info = folder / "poison_weights-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: poison-weights\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[segkit]\npoison-weights = poison_weights\n", encoding="utf-8")
    (folder / "poison_weights.py").write_text(POISON_PLUGIN, encoding="utf-8")
    return folder


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    """Issue 31 family 3: a loss that became NaN trained on and exited 0."""
    project = write_tiny_project(tmp_path / "project", epochs=3)
    with project.open("a", encoding="utf-8") as handle:
        handle.write('\n[[callbacks]]\nname = "poison-weights"\nepoch = 2\n')
    result = run_segkit(["train", project, "--quiet"], [poison_site(tmp_path / "site")])
    assert result.returncode == 1, output_of(result)
    assert result.stdout.splitlines()[-1] == (
        f"error: {project}: loss became nan at epoch 2, batch 1; training stopped and the checkpoint of epoch 1 is "
        "kept (lower optimizer.learning_rate, set optimizer.clipvalue, or check that the masks hold the class colours)")
    run = project.parent / "run"
    state = json.loads((run / "checkpoints" / "state.json").read_text(encoding="utf-8"))
    assert state["epoch"] == 1
    assert (run / "eval" / "train_losses.csv").read_text(encoding="utf-8").count("\n") == 2  # header, epoch 1
    import keras
    import numpy as np

    for path in (run / "checkpoints" / state["checkpoint"], run / "models" / "best_model.keras"):
        weights = keras.saving.load_model(path, compile=False).get_weights()
        assert all(np.isfinite(w).all() for w in weights), path
