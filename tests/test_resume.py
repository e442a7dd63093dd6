"""Interrupting a real training process (SIGTERM, SIGKILL) and resuming it loses nothing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tiny_data import write_tiny_project

EPOCHS = 5


def _segkit(*args: str) -> list[str]:
    return [sys.executable, "-c", "from segkit.cli.main import main; main()", *args]


def _train(project: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_segkit("train", str(project), "--quiet", *extra), capture_output=True, text=True,
                          timeout=300)


def _csvs(project: Path) -> tuple[str, str]:
    folder = project.parent / "run" / "eval"
    return (folder / "train_losses.csv").read_text(), (folder / "train_metrics.csv").read_text()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    project = write_tiny_project(tmp_path_factory.mktemp("whole"), epochs=EPOCHS)
    result = _train(project)
    assert result.returncode == 0, result.stderr
    return _csvs(project)


@pytest.fixture(scope="module")
def uninterrupted_averaging(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    project = write_tiny_project(tmp_path_factory.mktemp("whole-ema"), epochs=EPOCHS, ema_momentum=0.8)
    result = _train(project)
    assert result.returncode == 0, result.stderr
    return _csvs(project)


def _interrupt(project: Path, sig: signal.Signals) -> subprocess.CompletedProcess[str]:
    """Start training, wait for the first epoch's checkpoint, then signal it at a random moment."""
    process = subprocess.Popen(_segkit("train", str(project), "--quiet"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    state = project.parent / "run" / "checkpoints" / "state.json"
    deadline = time.monotonic() + 240
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(random.uniform(0.0, 0.5))
    process.send_signal(sig)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_interrupted_run_resumes_to_the_same_rows(tmp_path: Path, uninterrupted: tuple[str, str],
                                                  sig: signal.Signals) -> None:
    project = write_tiny_project(tmp_path, epochs=EPOCHS)
    stopped = _interrupt(project, sig)
    if stopped.returncode == 0:
        pytest.skip("training finished before the signal arrived")  # pragma: no cover - machine too fast
    if sig == signal.SIGTERM:
        assert stopped.returncode == 143, stopped.stderr
        assert "--resume" in stopped.stdout and "Traceback" not in stopped.stderr + stopped.stdout
    else:
        assert stopped.returncode == -signal.SIGKILL
    losses = (project.parent / "run" / "eval" / "train_losses.csv").read_text().splitlines()
    assert 2 <= len(losses) <= EPOCHS + 1  # a header and only whole epochs, never a torn line
    again = _train(project)
    assert again.returncode == 2 and "--resume" in again.stdout + again.stderr
    resumed = _train(project, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _csvs(project) == uninterrupted
    finished = _train(project, "--resume")
    assert finished.returncode == 2 and "nothing to resume" in finished.stdout + finished.stderr
    assert not list((project.parent / "run").rglob("*.tmp*"))


def test_an_averaging_run_resumes_to_the_same_rows(tmp_path: Path, uninterrupted: tuple[str, str],
                                                   uninterrupted_averaging: tuple[str, str]) -> None:
    # the checkpoint holds the averages in the model and the raw weights in the optimizer: a
    # resumed run that trained the averages instead would part from these rows at once
    assert uninterrupted_averaging[0] != uninterrupted[0]
    project = write_tiny_project(tmp_path, epochs=EPOCHS, ema_momentum=0.8)
    stopped = _interrupt(project, signal.SIGKILL)
    if stopped.returncode == 0:
        pytest.skip("training finished before the signal arrived")  # pragma: no cover - machine too fast
    resumed = _train(project, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _csvs(project) == uninterrupted_averaging


def test_resume_without_a_checkpoint_says_so(tmp_path: Path) -> None:
    project = write_tiny_project(tmp_path, epochs=1)
    result = _train(project, "--resume")
    assert result.returncode == 2
    assert "no resumable checkpoint" in result.stdout + result.stderr
