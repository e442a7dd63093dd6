"""Broken third-party plugins, installed as real distributions, break nothing but themselves.

Fake distributions live in one folder put on PYTHONPATH for a ``segkit`` subprocess, each
with a ``.dist-info`` (METADATA + entry_points.txt) so that importlib.metadata finds them exactly
as it finds pip-installed ones: one whose module raises on import, one whose hook raises, one whose
hook returns no spec records, one with a misspelt hook name, ones that exit or raise
KeyboardInterrupt, one whose reason holds rich markup, one with an int for a name, one that prints
while loading, and one that registers the built-in name ``flexunet`` again.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from segkit_process import output_of, run_segkit, start_segkit
from tiny_data import write_tiny_project

LONG_NAME = "segkit-plugin-with-a-distribution-name-longer-than-a-terminal-line-is-wide"
LONG_TEXT = "a description that goes on " * 6 + "and ends here"
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
    "exits-at-import": ("exits_at_import_plugin", "import sys\nsys.exit(3)\n"),
    "interrupts-at-import": ("interrupts_at_import_plugin", "raise KeyboardInterrupt\n"),
    "exits-in-hook": ("exits_in_hook_plugin", (
        "import sys\nimport segkit\n\n@segkit.hookimpl\ndef segkit_losses():\n    sys.exit('no licence')\n")),
    "markup-reason": ("markup_reason_plugin", 'raise RuntimeError("needs [/] and [bold]x[/bold] set")\n'),
    "int-name": ("int_name_plugin", (
        "import segkit\nfrom segkit.specs import ModelSpec\n\n@segkit.hookimpl\ndef segkit_models():\n"
        "    return [ModelSpec(7, 'a number for a name', lambda request: None)]\n")),
    "noisy": ("noisy_plugin", (
        "import sys\nimport segkit\nfrom segkit.specs import ModelSpec\nprint('noisy: hello [/] from import')\n\n"
        "@segkit.hookimpl\ndef segkit_models():\n    print('noisy: warning on stderr', file=sys.stderr)\n"
        "    print('noisy: \\x1b[2Jcleared')\n"
        "    return [ModelSpec('noisy-net', 'works, but talks', lambda request: None)]\n")),
    LONG_NAME: ("long_names_plugin", (
        "import segkit\nfrom segkit.options import Option\nfrom segkit.specs import LossSpec\n\n"
        "@segkit.hookimpl\ndef segkit_losses():\n"
        f"    return [LossSpec('{LONG_NAME}-loss', {LONG_TEXT!r}, lambda request: None,\n"
        f"                     options=(Option('a_rather_long_key_name_for_a_loss_weight', 'float', 0.25, {LONG_TEXT!r}),))]\n")),
}
FAILED = {"broken-hook", "broken-import", "misspelt-hook", "not-a-record", "exits-at-import", "interrupts-at-import",
          "exits-in-hook", "markup-reason", "int-name"}


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
    assert status == dict.fromkeys(FAILED, "failed")


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


def test_plugins_that_exit_interrupt_or_talk_cost_only_themselves(site: Path) -> None:
    result = run_segkit(["plugins"], [site])
    assert result.returncode == 0, output_of(result)
    lines = result.stdout.splitlines()
    for line in [
        "failed: plugin 'exits-at-import' (exits-at-import 1.0): import failed: SystemExit: 3",
        "failed: plugin 'interrupts-at-import' (interrupts-at-import 1.0): import failed: KeyboardInterrupt",
        "failed: plugin 'exits-in-hook' (exits-in-hook 1.0): hook raised SystemExit: no licence",
        ("failed: plugin 'markup-reason' (markup-reason 1.0): import failed: RuntimeError: needs [/] and "
         "[bold]x[/bold] set"),
        ("failed: plugin 'int-name' (int-name 1.0): hook segkit_models returned a bad record: name 7 is not a "
         "non-empty string"),
        "note: plugin 'noisy' (noisy 1.0) printed while loading:",
        "    noisy: hello [/] from import",
        "    noisy: warning on stderr",
        "    noisy: \\x1b[2Jcleared",
    ]:
        assert line in lines, (line, output_of(result))
    assert lines.index("note: plugin 'noisy' (noisy 1.0) printed while loading:") > 0
    assert lines[0].startswith("segkit plugins")  # nothing printed before the table
    assert any(line.startswith("│ noisy-net") for line in lines)


def test_plugins_json_stays_json_when_a_plugin_prints(site: Path) -> None:
    result = run_segkit(["plugins", "--json"], [site])
    assert result.returncode == 0, output_of(result)
    report = json.loads(result.stdout)  # stdout and stderr together: nothing but the JSON
    assert ("model", "noisy-net") in {(e["kind"], e["name"]) for e in report["entries"]}
    assert report["printed"] == [{"plugin": "noisy", "distribution": "noisy", "version": "1.0",
                                  "output": "noisy: hello [/] from import\nnoisy: warning on stderr\nnoisy: \x1b[2Jcleared\n"}]


def test_ctrl_c_while_plugins_load_still_stops_the_command(tmp_path: Path) -> None:
    marker = tmp_path / "importing"
    install_fake_distribution(tmp_path, "slow-import", "slow_import_plugin", (
        f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(60)\n"))
    command = start_segkit(["plugins"], [tmp_path])
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline and command.poll() is None:
        time.sleep(0.05)
    command.send_signal(signal.SIGINT)
    output, _ = command.communicate(timeout=30)
    assert command.returncode == 130, output
    assert output.strip().splitlines()[-1] == "interrupted"


def test_output_to_a_file_keeps_long_names_and_keys_whole(site: Path, tmp_path: Path) -> None:
    listing = tmp_path / "plugins.txt"
    with listing.open("w", encoding="utf-8") as out:  # as `segkit plugins --keys > file` with an 80-column shell
        returncode = run_segkit(["plugins", "--keys"], [site], to_file=out, COLUMNS="80").returncode
    text = listing.read_text(encoding="utf-8")
    assert returncode == 0, text
    row = next(line for line in text.splitlines() if line.startswith(f"│ {LONG_NAME}-loss "))
    assert [cell.strip() for cell in row.strip("│").split("│")] == [
        f"{LONG_NAME}-loss", "loss", LONG_TEXT, f"{LONG_NAME} 1.0"]
    key_row = next(line for line in text.splitlines() if line.startswith("│ a_rather_long_key_name_for_a_loss_weight "))
    assert [cell.strip() for cell in key_row.strip("│").split("│")] == [
        "a_rather_long_key_name_for_a_loss_weight", "float", "0.25", LONG_TEXT]


def test_plugins_name_shows_that_entry_and_its_keys(site: Path) -> None:
    report = json.loads(run_segkit(["plugins", f"{LONG_NAME}-loss", "--json"], [site]).stdout)
    assert [(e["kind"], e["name"]) for e in report["entries"]] == [("loss", f"{LONG_NAME}-loss")]
    assert report["entries"][0]["keys"] == [{
        "name": "a_rather_long_key_name_for_a_loss_weight", "kind": "float", "required": False, "default": 0.25,
        "help": LONG_TEXT, "minimum": None, "maximum": None, "choices": [], "fields": []}]
    result = run_segkit(["plugins", "categorised-masks"], [site])
    assert result.returncode == 2
    line, = result.stdout.splitlines()
    assert line.startswith("error: unknown plugin entry 'categorised-masks' (available: categorical_crossentropy, ")
    assert line.endswith("); did you mean 'categorized-masks'?")
