"""Interrupting a real training process (SIGTERM, SIGKILL) and resuming it loses nothing.

The tiny model uses dropout, so a resume that did not restore the layers' random state would
part from the uninterrupted rows at the first resumed epoch. The interruption is sent by the
training process itself once epoch 1 is committed (``SEGKIT_TEST_SIGNAL_AFTER_EPOCH``), so it
happens at the same point on a fast machine and a slow one.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from segkit_process import run_segkit
from tiny_data import write_tiny_project

from segkit.engine.resume import SIGNAL_AFTER_EPOCH_ENV

EPOCHS = 3
DROPOUT = 0.1


def _train(project: Path, *extra: str, stop: str = "") -> subprocess.CompletedProcess[str]:
    env = {SIGNAL_AFTER_EPOCH_ENV: f"{stop}:1"} if stop else {}
    return run_segkit(["train", project, "--quiet", *extra], **env)


def _csvs(project: Path) -> tuple[str, str]:
    folder = project.parent / "run" / "eval"
    return (folder / "train_losses.csv").read_text(), (folder / "train_metrics.csv").read_text()


def _whole_run(root: Path, **settings: float) -> tuple[str, str]:
    project = write_tiny_project(root, epochs=EPOCHS, dropout_rate=DROPOUT, **settings)
    result = _train(project)
    assert result.returncode == 0, result.stdout
    return _csvs(project)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return _whole_run(tmp_path_factory.mktemp("whole"))


@pytest.fixture(scope="module")
def uninterrupted_averaging(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return _whole_run(tmp_path_factory.mktemp("whole-ema"), ema_momentum=0.8)


def _leave_what_a_kill_between_the_steps_leaves(run: Path) -> None:
    """An epoch-2 checkpoint whose state was never committed (here: garbage), its temporary file and
    the best model's, and a checkpoint older than the state's, not yet removed."""
    checkpoints = run / "checkpoints"
    (checkpoints / "last-0002.keras").write_bytes(b"torn")
    (checkpoints / ".last-0002.tmp.keras").write_bytes(b"torn")
    (run / "models" / ".best_model.tmp.keras").write_bytes(b"torn")
    shutil.copy(checkpoints / "last-0001.keras", checkpoints / "last-0000.keras")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_interrupted_run_resumes_to_the_same_rows(tmp_path: Path, uninterrupted: tuple[str, str],
                                                  sig: signal.Signals) -> None:
    project = write_tiny_project(tmp_path, epochs=EPOCHS, dropout_rate=DROPOUT)
    same_seed = ("--set", "project.seed=7")  # the file's own value: the hint must repeat it
    stopped = _train(project, *same_seed, stop=sig.name)
    run = project.parent / "run"
    if sig == signal.SIGTERM:
        assert stopped.returncode == 143, stopped.stdout
        assert ("the checkpoint of epoch 1 is kept. Resume with: segkit train "
                f"{project} --set project.seed=7 --resume") in stopped.stdout
        assert "Traceback" not in stopped.stdout
    else:
        assert stopped.returncode == -signal.SIGKILL
        _leave_what_a_kill_between_the_steps_leaves(run)
    assert len((run / "eval" / "train_losses.csv").read_text().splitlines()) == 2  # header, epoch 1
    again = _train(project)
    assert again.returncode == 2 and "--resume" in again.stdout
    resumed = _train(project, *same_seed, "--resume")
    assert resumed.returncode == 0, resumed.stdout
    assert _csvs(project) == uninterrupted
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last-0003.keras", "state.json"]
    finished = _train(project, "--resume")
    assert finished.returncode == 2 and "nothing to resume" in finished.stdout
    assert not list(run.rglob("*.tmp*"))


def test_an_averaging_run_resumes_to_the_same_rows(tmp_path: Path, uninterrupted: tuple[str, str],
                                                   uninterrupted_averaging: tuple[str, str]) -> None:
    # the checkpoint holds the averages in the model and the raw weights in the optimizer: a
    # resumed run that trained the averages instead would part from these rows at once
    assert uninterrupted_averaging[0] != uninterrupted[0]
    project = write_tiny_project(tmp_path, epochs=EPOCHS, dropout_rate=DROPOUT, ema_momentum=0.8)
    stopped = _train(project, stop="SIGKILL")
    assert stopped.returncode == -signal.SIGKILL
    resumed = _train(project, "--resume")
    assert resumed.returncode == 0, resumed.stdout
    assert _csvs(project) == uninterrupted_averaging


def test_the_state_names_the_random_state_of_every_dropout_layer(tmp_path: Path) -> None:
    project = write_tiny_project(tmp_path, epochs=EPOCHS, dropout_rate=DROPOUT)
    assert _train(project, stop="SIGTERM").returncode == 143
    state = json.loads((project.parent / "run" / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 1 and state["checkpoint"] == "last-0001.keras" and not state["finished"]
    # FlexUNet at 3 levels: a dropout layer per level in the encoder and the decoder, each drawn
    # from once per training step (8 pairs / batch 4 = 2 steps)
    assert state["seed_states"] and all(s[1] == 2 for s in state["seed_states"])


def test_resume_without_a_checkpoint_says_so(tmp_path: Path) -> None:
    project = write_tiny_project(tmp_path, epochs=1)
    result = _train(project, "--resume")
    assert result.returncode == 2
    assert "no resumable checkpoint" in result.stdout
