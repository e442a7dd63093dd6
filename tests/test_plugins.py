"""Plugin discovery: entry points only, failures isolated, duplicate names refused naming both."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from segkit_process import block_imports, run_python
from typer.testing import CliRunner

import segkit
import segkit.plugin as segkit_plugin
from segkit import hookspecs
from segkit.cli.main import app
from segkit.errors import PluginError
from segkit.plugins import build_registry, get_registry
from segkit.specs import LossSpec, ModelSpec

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


class FakeDist:
    def __init__(self, name: str, version: str) -> None:
        self.metadata = {"Name": name}
        self.version = version


def fake_entry_point(name: str, module: str, dist: str = "fake-dist") -> metadata.EntryPoint:
    point = metadata.EntryPoint(name=name, value=module, group="segkit")
    # EntryPoint is immutable; the dist attribute is what importlib sets for real ones.
    object.__setattr__(point, "dist", FakeDist(dist, "9.9"))
    return point


def install_module(monkeypatch: pytest.MonkeyPatch, name: str, **hooks: object) -> None:
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, segkit.hookimpl(function))
    monkeypatch.setitem(sys.modules, name, module)


def test_builtins_come_from_entry_points_with_their_distribution() -> None:
    registry = get_registry()
    for kind, name in [("model", "flexunet"), ("dataset", "categorized-masks"), ("loss", "categorical_crossentropy"),
                       ("metric", "dice_coef_multiclass"), ("callback", "epoch-change-inferencer")]:
        entry = registry.get(kind, name)
        assert entry.plugin.distribution == "segkit"
        assert entry.plugin.version == segkit.__version__


def test_duplicate_names_are_refused_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ModelSpec("unet", "a unet", lambda request: None)
    install_module(monkeypatch, "fake_a", segkit_models=lambda: [spec])
    install_module(monkeypatch, "fake_b", segkit_models=lambda: [spec])
    registry = build_registry([fake_entry_point("a", "fake_a", "dist-a"), fake_entry_point("b", "fake_b", "dist-b")])
    with pytest.raises(PluginError) as info:
        registry.get("model", "unet")
    assert "plugin 'a' (dist-a 9.9)" in str(info.value) and "plugin 'b' (dist-b 9.9)" in str(info.value)


def test_broken_plugins_are_isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    install_module(monkeypatch, "fake_good", segkit_models=lambda: [ModelSpec("good", "works", lambda r: None)])

    def explode() -> list[ModelSpec]:
        raise RuntimeError("boom in hook")

    install_module(monkeypatch, "fake_raises", segkit_models=explode)
    registry = build_registry([
        fake_entry_point("good", "fake_good"), fake_entry_point("raises", "fake_raises"),
        fake_entry_point("missing", "no_such_module_anywhere"),
    ])
    status = {p.name: (p.status, p.reason) for p in registry.plugins}
    assert status["good"] == ("loaded", "")
    assert status["raises"] == ("failed", "hook raised RuntimeError: boom in hook")
    assert status["missing"][0] == "failed" and "No module named 'no_such_module_anywhere'" in status["missing"][1]
    assert registry.names("model") == ["good"]
    with pytest.raises(PluginError, match=r"plugins that failed to load: .*plugin 'raises' \(fake-dist 9.9\): hook raised"):
        registry.get("model", "other")


def test_disabled_plugin_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGKIT_DISABLE_PLUGINS", "flexunet")
    registry = build_registry()
    assert "flexunet" not in registry.names("model")
    assert {p.name: p.status for p in registry.plugins}["flexunet"] == "disabled"


def test_with_entry_points_blocked_nothing_is_listed(monkeypatch: pytest.MonkeyPatch, tiny_project: Path) -> None:
    """Invariant 1: the core knows no plugin by name; without entry points it has nothing."""
    monkeypatch.setattr(metadata, "entry_points", lambda **kwargs: [])
    get_registry.cache_clear()
    result = runner.invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output)["entries"] == []
    result = runner.invoke(app, ["train", str(tiny_project)])
    assert result.exit_code == 2
    assert "model.name: unknown model 'flexunet' (available: none are installed)" in result.output


def test_plugins_command_lists_builtins() -> None:
    result = runner.invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    entries = {(e["kind"], e["name"]): e for e in json.loads(result.output)["entries"]}
    for key in [("model", "flexunet"), ("dataset", "categorized-masks"), ("callback", "epoch-change-inferencer"),
                ("loss", "categorical_crossentropy"), ("metric", "dice_coef_multiclass")]:
        assert entries[key]["distribution"] == "segkit"
    assert "base_filters" in entries[("model", "flexunet")]["options"]
    table = runner.invoke(app, ["plugins"], env={"COLUMNS": "200"})
    assert "epoch-change-inferencer" in table.output and "segkit 0.1.0" in table.output


def test_disable_plugin_option() -> None:
    result = runner.invoke(app, ["--disable-plugin", "synthetic", "plugins", "--json"])
    report = json.loads(result.output)
    assert "synthetic-he" not in {e["name"] for e in report["entries"]}
    assert {"plugin": "synthetic", "status": "disabled"}.items() <= report["problems"][0].items()


@pytest.mark.parametrize(("how", "provides"), [
    (["--disable-plugin", "training"], "loss 'categorical_crossentropy' and metric 'dice_coef_multiclass'"),
    (["--disable-plugin", "flexunet", "--disable-plugin", "masks"], "dataset 'categorized-masks'"),
])
def test_disabling_a_plugin_that_provides_essential_names_is_one_line(how: list[str], provides: str) -> None:
    result = runner.invoke(app, [*how, "plugins"])
    assert result.exit_code == 2
    plugin = how[-1]
    assert result.output.splitlines() == [(
        f"error: SEGKIT_DISABLE_PLUGINS: plugin '{plugin}' (segkit {segkit.__version__}) cannot be disabled: it "
        f"provides {provides}, which segkit itself relies on (remove '{plugin}' from --disable-plugin and "
        "SEGKIT_DISABLE_PLUGINS)")]


def test_disabling_segkit_itself_names_the_essentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGKIT_DISABLE_PLUGINS", "segkit")  # a distribution name disables all its plugins
    with pytest.raises(PluginError, match=r"plugin 'masks' \(segkit [0-9.]+\) cannot be disabled: it provides "
                                          r"dataset 'categorized-masks'"):
        build_registry()


def test_core_never_imports_a_plugin_package() -> None:
    plugin_packages = [p.name for p in (ROOT / "plugins").iterdir() if p.is_dir() and p.name.startswith("segkit_")]
    for source in (ROOT / "segkit").rglob("*.py"):
        text = source.read_text()
        for package in plugin_packages:
            assert f"import {package}" not in text and f"from {package}" not in text, (source, package)


def test_every_hook_is_documented_with_an_example() -> None:
    hooks = [name for name in dir(hookspecs) if name.startswith("segkit_")]
    assert len(hooks) == 8
    for name in hooks:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert "Called" in doc and ":return:" in doc and "Example::" in doc, name


@pytest.mark.parametrize(("records", "reason"), [
    (lambda: ["flexunet"], "hook segkit_models returned a bad record: str 'flexunet' is not a ModelSpec"),
    (lambda: [{"name": "net"}], "hook segkit_models returned a bad record: dict {'name': 'net'} is not a ModelSpec"),
    (lambda: ModelSpec("single", "not in a list", lambda r: None),
     "hook segkit_models returned ModelSpec 'single', not a list of ModelSpec"),
    (lambda: [ModelSpec(7, "int name", lambda r: None)], "bad record: name 7 is not a non-empty string"),  # type: ignore[arg-type]
    (lambda: [ModelSpec(" ", "blank", lambda r: None)], "bad record: name ' ' is not a non-empty string"),
    (lambda: [ModelSpec("a\nb", "newline", lambda r: None)], "bad record: name 'a\\nb' contains control characters"),
    (lambda: [ModelSpec("net", None, lambda r: None)], "bad record: 'net': description NoneType None is not a string"),  # type: ignore[arg-type]
    (lambda: [ModelSpec("net", "x", "build_net")], "bad record: 'net': build str 'build_net' is not callable"),  # type: ignore[arg-type]
    (lambda: [ModelSpec("net", "x", lambda r: None, options=["depth"])],  # type: ignore[arg-type]
     "bad record: 'net': options must be a tuple of Option records"),
    (lambda: [LossSpec("net", "a loss from the model hook", lambda r: None)],
     "bad record: LossSpec 'net' is not a ModelSpec"),
])
def test_a_bad_record_fails_only_its_plugin(monkeypatch: pytest.MonkeyPatch, records: Any, reason: str) -> None:
    install_module(monkeypatch, "fake_good", segkit_models=lambda: [ModelSpec("good", "works", lambda r: None)])
    install_module(monkeypatch, "fake_bad", segkit_models=records,
                   segkit_losses=lambda: [LossSpec("never-registered", "x", lambda r: None)])
    registry = build_registry([fake_entry_point("good", "fake_good"), fake_entry_point("bad", "fake_bad")])
    status = {p.name: (p.status, p.reason) for p in registry.plugins}
    assert status["good"] == ("loaded", "")
    assert status["bad"][0] == "failed" and reason in status["bad"][1], status["bad"][1]
    assert registry.names("model") == ["good"]
    assert registry.names("loss") == []  # a plugin with one bad record registers nothing


def test_a_misspelt_hook_fails_its_plugin_naming_the_right_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    install_module(monkeypatch, "fake_typo", segkit_model=lambda: [ModelSpec("typo-net", "x", lambda r: None)])
    install_module(monkeypatch, "fake_odd", frobnicate=lambda: ["never called"])
    registry = build_registry([fake_entry_point("typo", "fake_typo"), fake_entry_point("odd", "fake_odd")])
    status = {p.name: (p.status, p.reason) for p in registry.plugins}
    assert status["typo"] == ("failed", "unknown hook 'segkit_model'; did you mean 'segkit_models'?")
    assert status["odd"][0] == "failed"
    assert status["odd"][1].startswith("unknown hook 'frobnicate' (hooks: segkit_models, segkit_datasets")


def test_optional_dataset_methods_are_declared_protocols(tmp_path: Path) -> None:
    """check/notes/folders are found through the protocols in segkit.specs, not by attribute name."""
    from segkit.classes import ClassInfo, ClassTable
    from segkit.data.folders import FolderDataset, SplitFolders
    from segkit.specs import CheckedSource, DatasetSource, FolderSource, NotedSource

    class PairsOnly:
        def pairs(self, split: str) -> list[Any]:
            return []

        def load(self, pair: Any) -> tuple[Any, Any]:
            return None, None

    class WithNotes(PairsOnly):
        def notes(self) -> list[str]:
            return ["a note"]

    folders = FolderDataset({"train": SplitFolders(tmp_path, tmp_path)}, ClassTable((ClassInfo("a", (0, 0, 0)),)))
    optional = (CheckedSource, NotedSource, FolderSource)
    assert [isinstance(folders, p) for p in optional] == [True, True, True]
    assert [isinstance(PairsOnly(), p) for p in optional] == [False, False, False]
    assert [isinstance(WithNotes(), p) for p in optional] == [False, True, False]
    assert not hasattr(DatasetSource, "splits") and not hasattr(folders, "splits")  # declared, never called: gone


def test_plugins_import_segkit_only_through_the_facade() -> None:
    """The built-in plugins and the example use only segkit.plugin, the surface offered to plugin authors."""
    sources = [*(ROOT / "plugins").rglob("*.py"), *(ROOT / "examples" / "segkit-plugin-example").rglob("*.py")]
    offenders = []
    for source in sources:
        if "tests" in source.relative_to(ROOT).parts:
            continue  # a plugin's tests may drive the core (build_registry) like any test
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            offenders += [f"{source.relative_to(ROOT)}: {m}" for m in modules
                          if (m == "segkit" or m.startswith("segkit.")) and m != "segkit.plugin"]
    assert len(sources) > 20 and offenders == []


def test_facade_exports_what_it_lists_without_tensorflow() -> None:
    result = run_python(block_imports(["tensorflow", "keras"]) + (
        "import segkit.plugin as facade\n"
        "missing = [n for n in facade.__all__ if not hasattr(facade, n)]\n"
        "print(len(facade.__all__), missing)\n"))
    assert result.stdout.split() == [str(len(segkit_plugin.__all__)), "[]"], result.stdout
    assert {"hookimpl", "ModelSpec", "DatasetRequest", "Option", "ClassTable", "ClassInfo", "DataError",
            "PluginError", "DatasetSource"} <= set(segkit_plugin.__all__)
