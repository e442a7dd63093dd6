"""tf.distribute on CPU: mirrored over two logical devices, and two workers on localhost."""

from __future__ import annotations

import csv
import json
import re
import socket
import subprocess
from pathlib import Path

import pytest

from segkit_process import run_python, start_segkit
from tiny_data import best_val_loss, saved_model_loss_on_valid, write_tiny_project

TWO_CPUS = (
    "import tensorflow as tf; cpu = tf.config.list_physical_devices('CPU')[0]; "
    "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2); "
    "from segkit.cli.main import main; main()"
)


def _losses(run: Path) -> list[float]:
    with (run / "eval" / "train_losses.csv").open() as handle:
        return [float(row[key]) for row in csv.DictReader(handle) for key in ("loss", "val_loss")]


def _train_two_cpus(project: Path, strategy: str, output: str) -> subprocess.CompletedProcess[str]:
    return run_python(
        TWO_CPUS, ["train", project, "--quiet", "--set", f"train.strategy={strategy}",
         "--set", f"project.output_dir={output}", "--set", "train.epochs=2", "--set", "train.patience=0",
         # Adam turns float-rounding noise in near-zero gradients into steps of the full learning
         # rate; a small rate keeps that below the tolerance without hiding a real mismatch
         "--set", "optimizer.learning_rate=0.001"],
        timeout=300, cwd=project.parent, stderr_apart=True)


def test_mirrored_matches_one_device(tmp_path: Path) -> None:
    project = write_tiny_project(tmp_path, epochs=2)
    single = _train_two_cpus(project, "one_device", "single")
    assert single.returncode == 0, single.stderr
    mirrored = _train_two_cpus(project, "mirrored", "mirrored")
    assert mirrored.returncode == 0, mirrored.stderr
    assert "strategy mirrored: 2 replica(s)" in mirrored.stdout
    assert "strategy one_device: 1 replica(s)" in single.stdout
    for a, b in zip(_losses(tmp_path / "single"), _losses(tmp_path / "mirrored"), strict=True):
        assert abs(a - b) / abs(a) <= 1e-4, (a, b)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.parametrize("ema_momentum", [None, 0.8])
def test_two_workers_on_localhost(tmp_path: Path, ema_momentum: float | None) -> None:
    project = write_tiny_project(tmp_path, epochs=2, ema_momentum=ema_momentum)
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    processes = []
    for index in range(2):
        task = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(start_segkit(["train", project, "--quiet", "--set", "train.strategy=multi_worker",
                                       "--set", f"project.output_dir=run{index}"],
                                      cwd=tmp_path, stderr_apart=True, TF_CONFIG=task))
    outputs = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=300)
        finally:
            process.kill()
        assert process.returncode == 0, err[-3000:]
        outputs.append(out)
    assert "this process is the chief" in outputs[0] and "this process is a worker" in outputs[1]
    digests = [re.search(r"weights sha256: ([0-9a-f]{64})", out).group(1) for out in outputs]  # type: ignore[union-attr]
    assert digests[0] == digests[1]
    assert (tmp_path / "run0" / "models" / "best_model.keras").exists()
    assert len(_losses(tmp_path / "run0")) == 4  # loss and val_loss of 2 epochs
    assert [p for p in (tmp_path / "run1").rglob("*") if p.is_file()] == []  # the worker wrote nowhere
    # the workers validated what the chief saved: the averaged weights when averaging
    run = tmp_path / "run0"
    assert saved_model_loss_on_valid(project, run) == pytest.approx(best_val_loss(run), rel=1e-4)
