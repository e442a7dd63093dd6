"""A model's own rules are checked before the run folder is touched and before TensorFlow loads.

``ModelSpec.check`` (FlexUNet's size rule) runs first in ``segkit train``: a size the model
cannot take ends in one line, exit 2, with every byte of an earlier run where it was.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from segkit.engine.components import model_request
from segkit.engine.model_checks import check_memory, machine_memory, size
from segkit.errors import ProjectError
from segkit.plugins import get_registry
from segkit.project import load_project
from cli_results import snapshot
from segkit_flexunet.flexunet_rules import activation_count, parameter_count
from segkit_process import block_imports, output_of, run_python
from tiny_data import write_tiny_project

#: What an earlier run left in the tiny project's output folder (the layout ``segkit train`` writes).
EARLIER_RUN = {
    "models/best_model.keras": b"the earlier best model",
    "eval/train_losses.csv": b"epoch,loss,val_loss\n1,0.5,0.6\n",
    "project.resolved.toml": b'[project]\nname = "tiny"\n',
}

#: ``segkit ARGS`` in a process where importing TensorFlow or Keras fails.
WITHOUT_TENSORFLOW = block_imports(["tensorflow", "keras"]) + (
    "sys.argv = ['segkit', *sys.argv[1:]]\nfrom segkit.cli.main import main\nmain()\n")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = write_tiny_project(tmp_path, epochs=1)
    for name, data in EARLIER_RUN.items():
        (tmp_path / "run" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "run" / name).write_bytes(data)
    return project


def test_a_size_flexunet_cannot_take_keeps_the_earlier_run(project: Path) -> None:
    """Issue 25 defect 1: ``--set model.image_width=65 --overwrite`` deleted the run, then failed."""
    run = project.parent / "run"
    before = snapshot(run)
    result = run_python(WITHOUT_TENSORFLOW, ["train", project, "--set", "model.image_width=65", "--overwrite"])
    assert result.returncode == 2, output_of(result)
    expected = (f"error: {project}: model: image_width=65 is not divisible by 4 (2**(num_layers-1) with "
                "num_layers=3); nearest valid sizes: 64 or 68")
    assert result.stdout.splitlines() == [expected]
    assert snapshot(run) == before


# ----------------------------------------------------------------------------- memory, before TensorFlow

REFERENCE_512 = ["model.image_width=512", "model.image_height=512", "model.base_filters=16", "model.base_kernels=7",
                 "model.num_layers=8", "train.batch_size=2"]
GIB = 2**30


def refusal(result: subprocess.CompletedProcess[str], project: Path, keys: str, hint: str) -> None:
    """Exit 2 and one line naming ``keys``, the memory needed and this machine's."""
    assert result.returncode == 2, output_of(result)
    pattern = (rf"error: {re.escape(str(project))}: {re.escape(keys)}: training needs at least [\d.]+ [KMGTPE]iB "
               rf"\([\d.]+ [KMGTPE]?i?B for the layer outputs of \d+ image\(s\) of \d+x\d+, [\d.]+ [KMGTPE]?i?B for "
               rf"[\d,]+ weights with their gradients and optimizer state\), more than this machine's "
               rf"{re.escape(size(machine_memory()))} of memory \({re.escape(hint)}\)")
    assert len(result.stdout.splitlines()) == 1 and re.fullmatch(pattern, result.stdout.strip()), output_of(result)


# Each value within its key's declared maximum (a billion is refused by the maximum itself): the
# largest images at a small batch, and the largest batch of large images.
@pytest.mark.parametrize("overrides", [["model.image_width=8192", "model.image_height=8192"],
                                       ["model.image_width=2048", "model.image_height=2048", "train.batch_size=1024"]],
                         ids=["largest-images", "largest-batch"])
def test_a_batch_that_cannot_fit_in_memory_is_refused_before_tensorflow(project: Path, overrides: list[str]) -> None:
    """Issue 31 family 4: ``image_width = 1e9`` hung or ended in ResourceExhaustedError."""
    before = snapshot(project.parent / "run")
    sets = [arg for value in overrides for arg in ("--set", value)]
    started = time.monotonic()
    result = run_python(WITHOUT_TENSORFLOW, ["train", project, *sets, "--overwrite"], timeout=60)
    assert time.monotonic() - started < 30
    refusal(result, project, "model.image_width, model.image_height, train.batch_size",
            "use smaller images or a smaller batch")
    assert snapshot(project.parent / "run") == before


def test_a_model_whose_weights_cannot_fit_names_the_model_keys(project: Path) -> None:
    result = run_python(WITHOUT_TENSORFLOW, ["train", project, "--set", "model.base_filters=1024",
                                             "--set", "model.num_layers=10", "--set", "model.image_width=512",
                                             "--set", "model.image_height=512", "--set", "train.batch_size=1"])
    keys = "model.base_filters, model.base_kernels, model.num_layers"
    refusal(result, project, keys, "make the model smaller")


def test_the_512_px_reference_model_fits_a_small_machine(project: Path) -> None:
    """The bound is a lower one: the reference project (124 M weights, batch 2) passes with 8 GiB."""
    loaded = load_project(project, REFERENCE_512, get_registry())
    spec = get_registry().get("model", "flexunet").spec
    footprint = spec.footprint(model_request(loaded))
    assert footprint.parameters == 124_477_203
    check_memory(loaded, footprint, 8 * GIB)
    with pytest.raises(ProjectError, match="more than this machine's 2.0 GiB of memory"):
        check_memory(loaded, footprint, 2 * GIB)


@pytest.mark.parametrize("options", [
    {"num_layers": 2, "base_filters": 3, "base_kernels": (1, 1), "normalization": False},
    {"num_layers": 3, "base_filters": 4, "base_kernels": (7, 5), "normalization": True},
    {"num_layers": 5, "base_filters": 2, "base_kernels": (9, 9), "normalization": False},
], ids=["depth-2", "depth-3-bn", "depth-5"])
def test_flexunet_footprint_counts_the_weights_keras_creates(options: dict[str, object]) -> None:
    from segkit_flexunet.flexunet import build_flexunet

    geometry = {"image_height": 32, "image_width": 48, "image_channels": 2, "num_classes": 4}
    model = build_flexunet(**geometry, **options, dropout_rate=0.0)  # type: ignore[arg-type]
    assert parameter_count(image_channels=2, num_classes=4, **options) == model.count_params()  # type: ignore[arg-type]
    values = activation_count(image_height=32, image_width=48, image_channels=2, num_classes=4,
                              base_filters=options["base_filters"], num_layers=options["num_layers"],  # type: ignore[arg-type]
                              normalization=options["normalization"])  # type: ignore[arg-type]
    outputs = sum(int(np.prod(layer.output.shape[1:])) for layer in model.layers)
    assert values == outputs  # every layer's output once: the lower bound training keeps
