"""The example third-party plugin, pip-installed from its folder: listed under its own distribution, trains.

It is installed with ``pip install --no-deps --target`` into a temporary folder that only the
``segkit`` subprocesses see (PYTHONPATH), so the test environment itself is never changed.
"""

from __future__ import annotations

import csv
import importlib.metadata as metadata
import importlib.util
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from segkit import toml_io
from segkit_process import block_imports, environment, output_of, run_python, run_segkit
from tiny_data import tiny_project, write_tiny_project

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "segkit-plugin-example"
DISTRIBUTION, VERSION = "segkit-plugin-example", "0.3.0"
#: the example's model in place of the tiny project's FlexUNet (whose keys it does not take)
EXAMPLE_MODEL = {"name": "res-attention-unet", "image_width": 64, "image_height": 64, "filters": 4, "depth": 3}
#: keras.callbacks.TensorBoard needs the tensorboard package, which TensorFlow 2.21 no longer pulls in
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
EXAMPLE_LOSS = {"name": "focal-tversky", "beta": 0.8}


@dataclass(frozen=True)
class Installed:
    source: Path  # a copy of the example folder (pip builds in-tree; the checkout stays clean)
    site: Path  # the --target folder holding the package and its .dist-info


def has_build_backend() -> bool:
    """Whether this environment's setuptools can build the example (no download needed then)."""
    try:
        return int(metadata.version("setuptools").split(".")[0]) >= 77
    except metadata.PackageNotFoundError:
        return False


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    source = tmp_path_factory.mktemp("example-source") / EXAMPLE.name
    ignored = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache")
    shutil.copytree(EXAMPLE, source, ignore=ignored)
    site = tmp_path_factory.mktemp("example-site")
    isolation = ["--no-build-isolation"] if has_build_backend() else []
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *isolation,
                             "--target", str(site), str(source)], text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=300, check=False)
    assert result.returncode == 0, output_of(result)
    assert (site / f"segkit_plugin_example-{VERSION}.dist-info" / "entry_points.txt").exists()
    return Installed(source, site)


def example_project(root: Path) -> Path:
    tiny = tiny_project(epochs=2)
    train = {**tiny["train"], "tensorboard": True} if HAS_TENSORBOARD else tiny["train"]
    return write_tiny_project(root, epochs=2, model=EXAMPLE_MODEL, train=train, loss=EXAMPLE_LOSS,
                              callbacks=[*tiny["callbacks"], {"name": "lr-logger"}])


@pytest.fixture(scope="module")
def trained(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = example_project(tmp_path_factory.mktemp("example-project"))
    result = run_segkit(["train", project, "--quiet"], [installed.site])
    assert result.returncode == 0, output_of(result)
    return project


def test_plugins_lists_the_example_under_its_own_distribution(installed: Installed) -> None:
    result = run_segkit(["plugins", "--json"], [installed.site])
    assert result.returncode == 0, output_of(result)
    report = json.loads(result.stdout)
    ours = {(e["kind"], e["name"]): e for e in report["entries"] if e["distribution"] == DISTRIBUTION}
    assert set(ours) == {("model", "res-attention-unet"), ("loss", "focal-tversky"), ("callback", "lr-logger")}
    assert {e["version"] for e in ours.values()} == {VERSION}
    assert {e["plugin"] for e in ours.values()} == {"example"}
    assert ours[("model", "res-attention-unet")]["options"] == ["filters", "depth", "dropout", "attention"]
    assert report["problems"] == [] and report["conflicts"] == []
    table = run_segkit(["plugins"], [installed.site]).stdout
    assert f"{DISTRIBUTION} {VERSION}" in table


def test_registering_the_plugin_imports_no_tensorflow(installed: Installed) -> None:
    result = run_python("import sys, segkit_example_plugin as p\n"
                        "print(p.__file__)\nprint(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))",
                        pythonpath=[installed.site])
    assert result.returncode == 0, output_of(result)
    assert result.stdout.splitlines() == [str(installed.site / "segkit_example_plugin" / "__init__.py"), "[]"]


def test_plugin_keys_are_validated_like_core_keys(installed: Installed, tmp_path: Path) -> None:
    project = example_project(tmp_path)
    result = run_segkit(["train", project, "--set", "model.filtres=8"], [installed.site])
    assert result.returncode == 2
    message = result.stdout.strip()
    assert message.startswith(f"error: {project}: model.filtres: unknown key") and len(message.splitlines()) == 1
    assert message.endswith("(did you mean 'filters'?)")
    result = run_segkit(["train", project, "--set", "model.depth=9"], [installed.site])
    assert result.returncode == 2 and "model.depth" in result.stdout
    # a ValueError from the plugin's builder: one line on the loss's key, and no model is trained
    result = run_segkit(["train", project, "--set", "loss.alpha=0", "--set", "loss.beta=0"], [installed.site])
    assert result.returncode == 2 and not (project.parent / "run" / "models").exists()
    assert "Traceback" not in output_of(result)
    assert result.stdout.strip().splitlines()[-1] == \
        f"error: {project}: loss: alpha and beta are both 0: the index would ignore every error; raise either"


def test_trains_with_the_example_model_loss_and_callback(trained: Path) -> None:
    run = trained.parent / "run"
    resolved = toml_io.loads((run / "project.resolved.toml").read_text())
    assert resolved["model"] | {"image_channels": 3} == {
        "name": "res-attention-unet", "image_width": 64, "image_height": 64, "image_channels": 3,
        "filters": 4, "depth": 3, "dropout": 0.0, "attention": True}
    assert resolved["loss"] == {"name": "focal-tversky", "alpha": 0.3, "beta": 0.8, "gamma": 0.75,
                                "ce_weight": 1.0, "smooth": 1.0}
    rates = list(csv.DictReader((run / "lr_log.csv").open()))
    assert [r["epoch"] for r in rates] == ["1", "2"]
    assert [float(r["learning_rate"]) for r in rates] == pytest.approx([0.01, 0.01])
    losses = list(csv.DictReader((run / "eval" / "train_losses.csv").open()))
    assert [int(r["epoch"]) for r in losses] == [1, 2]
    # CE + focal Tversky is positive and below CE of a random 3-class guess + the term's maximum, 1
    assert all(0 < float(r["loss"]) < 1.1 + 1.0 and 0 < float(r["val_loss"]) for r in losses)


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="the tensorboard package is not installed")
def test_tensorboard_logs_land_in_the_run_folder(trained: Path) -> None:
    logs = trained.parent / "run" / "tensorboard"
    folders = {p.relative_to(logs).parts[0] for p in logs.rglob("events.out.tfevents.*")}
    assert sorted(folders) == ["train", "validation"]


def test_history_csv_reads_with_pandas(trained: Path) -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(trained.parent / "run" / "eval" / "train_metrics.csv")
    assert list(frame["epoch"]) == [1, 2] and frame["val_mean_foreground_dice"].between(0, 1).all()


def test_keras_export_loads_without_segkit_or_the_plugin(installed: Installed, trained: Path) -> None:
    result = run_segkit(["export", trained, "--format", "keras"], [installed.site])
    assert result.returncode == 0, output_of(result)
    run = trained.parent / "run"
    # the example builds from standard layers only, so the file needs no code at all to load
    script = block_imports(["segkit", "segkit_example_plugin"]) + (
        "import numpy as np, keras\n"
        "from PIL import Image\n"
        "model = keras.saving.load_model(sys.argv[1])\n"
        "best = keras.saving.load_model(sys.argv[2], compile=False)\n"
        "image = np.asarray(Image.open(sys.argv[3]).convert('RGB'), 'float32')[None] / 255.0\n"
        "print(model.get_layer('dec0_attention_apply').__class__.__name__, model.compiled)\n"
        "print(float(np.abs(model.predict_on_batch(image) - best.predict_on_batch(image)).max()))\n"
    )
    result = run_python(script, [run / "export" / "tiny.keras", run / "models" / "best_model.keras",
                                 trained.parent / "data" / "infer" / "odd_0.png"], pythonpath=[installed.site])
    assert result.returncode == 0, output_of(result)
    kind, difference = result.stdout.strip().splitlines()[-2:]
    assert kind == "Multiply False" and float(difference) == 0.0


def test_the_plugins_own_tests_pass_against_the_installed_package(installed: Installed, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(installed.source / "tests")]
    result = subprocess.run(command, env=environment([installed.site]), cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300, check=False)
    assert result.returncode == 0, output_of(result)
    assert " passed" in result.stdout.splitlines()[-1]
