"""Broken third-party plugins, installed as real distributions, break nothing but themselves.

Fake distributions live in one folder put on PYTHONPATH for a ``segkit`` subprocess, each
with a ``.dist-info`` (METADATA + entry_points.txt) so that importlib.metadata finds them exactly
as it finds pip-installed ones: one whose module raises on import, one whose hook raises, one whose
hook returns no spec records, one with a misspelt hook name, and one that registers the built-in
name ``flexunet`` again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segkit_process import output_of, run_segkit
from tiny_data import write_tiny_project

PLUGINS = {
    # distribution, entry point, module, source
    "broken-import": ("broken_import_plugin", 'raise RuntimeError("cannot find its licence file")\n'),
    "broken-hook": ("broken_hook_plugin", (
        "import segkit\n\n@segkit.hookimpl\ndef segkit_models():\n"
        "    raise KeyError('weights_url')\n")),
    "flexunet-again": ("flexunet_again_plugin", (
        "import segkit\nfrom segkit.specs import ModelSpec\n\n@segkit.hookimpl\ndef segkit_models():\n"
        "    return [ModelSpec('flexunet', 'a second flexunet', lambda request: None)]\n")),
    "not-a-record": ("not_a_record_plugin", (
        "import segkit\n\n@segkit.hookimpl\ndef segkit_models():\n    return ['unet', {'name': 'unet'}]\n")),
    "misspelt-hook": ("misspelt_hook_plugin", (
        "import segkit\nfrom segkit.specs import ModelSpec\n\n@segkit.hookimpl\ndef segkit_model():\n"
        "    return [ModelSpec('typo-net', 'never seen', lambda request: None)]\n")),
}


def install_fake_distribution(site: Path, name: str, module: str, source: str, version: str = "1.0") -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[segkit]\n{name} = {module}\n", encoding="utf-8")
    (site / f"{module}.py").write_text(source, encoding="utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site-packages")
    for name, (module, source) in PLUGINS.items():
        install_fake_distribution(folder, name, module, source)
    return folder


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_project(tmp_path_factory.mktemp("builtin-only"), epochs=1)


def test_plugins_lists_each_failure_on_one_line(site: Path) -> None:
    result = run_segkit(["plugins"], [site])
    assert result.returncode == 0, output_of(result)
    lines = result.stdout.splitlines()
    assert "failed: plugin 'broken-import' (broken-import 1.0): import failed: RuntimeError: cannot find its " \
           "licence file" in lines
    assert "failed: plugin 'broken-hook' (broken-hook 1.0): hook raised KeyError: 'weights_url'" in lines
    conflict = [line for line in lines if line.startswith("conflict: model 'flexunet'")]
    assert len(conflict) == 1
    assert "plugin 'flexunet' (segkit 0.1.0)" in conflict[0]
    assert "plugin 'flexunet-again' (flexunet-again 1.0)" in conflict[0]
    assert "failed: plugin 'not-a-record' (not-a-record 1.0): hook segkit_models returned a bad record: str " \
           "'unet' is not a ModelSpec" in lines
    assert "failed: plugin 'misspelt-hook' (misspelt-hook 1.0): unknown hook 'segkit_model'; did you mean " \
           "'segkit_models'?" in lines
    assert any("categorized-masks" in line and "segkit 0.1.0" in line for line in lines)  # the table is intact


def test_plugins_json_keeps_every_working_builtin(site: Path) -> None:
    report = json.loads(run_segkit(["plugins", "--json"], [site]).stdout)
    names = {(e["kind"], e["name"]) for e in report["entries"]}
    assert {("dataset", "categorized-masks"), ("loss", "categorical_crossentropy"),
            ("callback", "epoch-change-inferencer")} <= names
    assert ("model", "flexunet") not in names  # claimed twice: unusable until one is disabled
    status = {p["plugin"]: p["status"] for p in report["problems"]}
    assert status == {"broken-hook": "failed", "broken-import": "failed", "misspelt-hook": "failed",
                      "not-a-record": "failed"}


def test_builtin_project_trains_beside_broken_plugins(site: Path, project: Path) -> None:
    result = run_segkit(["train", project, "--quiet"], [site], SEGKIT_DISABLE_PLUGINS="flexunet-again")
    assert result.returncode == 0, output_of(result)
    assert (project.parent / "run" / "models" / "best_model.keras").stat().st_size > 10_000
    assert "epochs run" in result.stdout


def test_a_name_claimed_twice_fails_naming_both_until_one_is_disabled(site: Path, project: Path) -> None:
    result = run_segkit(["train", project, "--set", "train.epochs=0"], [site])
    assert result.returncode == 2
    assert "model.name: model 'flexunet' cannot be used: registered by both plugin 'flexunet' (segkit 0.1.0) and " \
           "plugin 'flexunet-again' (flexunet-again 1.0)" in result.stdout
    # with the duplicate switched off, validation gets past the name (and stops at epochs=0)
    result = run_segkit(["--disable-plugin", "flexunet-again", "train", project, "--set", "train.epochs=0"], [site])
    assert result.returncode == 2
    assert "train.epochs" in result.stdout and "flexunet" not in result.stdout


def test_project_needing_a_broken_plugin_names_it_and_why(site: Path, project: Path) -> None:
    result = run_segkit(["train", project, "--set", 'model.name="broken-net"'], [site])
    assert result.returncode == 2
    message = result.stdout.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert "unknown model 'broken-net'" in message
    assert "plugin 'broken-import' (broken-import 1.0): import failed: RuntimeError: cannot find its " \
           "licence file" in message
    assert "plugin 'broken-hook' (broken-hook 1.0): hook raised KeyError: 'weights_url'" in message


def test_disabled_plugin_is_shown_as_disabled_not_failed(site: Path) -> None:
    report = json.loads(run_segkit(["--disable-plugin", "broken-import", "plugins", "--json"], [site]).stdout)
    status = {p["plugin"]: p["status"] for p in report["problems"]}
    assert status["broken-import"] == "disabled" and status["broken-hook"] == "failed"
