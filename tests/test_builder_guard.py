"""``segkit stats`` and ``segkit prepare`` call plugin builders through the guard every command uses:
a builder's ValueError is one line on its key, exit 2 (it used to end in "internal error")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from segkit.cli.main import app
from segkit.options import Option
from segkit.plugins import PluginInfo, get_registry
from segkit.specs import DatasetSpec, PreparerSpec
from cli_results import single_error_line
from tiny_data import write_tiny_project

runner = CliRunner()
TESTS = PluginInfo("refusing", "tests", "tests", "0")


def refuse(request: Any) -> Any:
    raise ValueError("the archive's index lists no split")


def test_a_dataset_builder_that_refuses_is_one_line_in_stats(tmp_path: Path) -> None:
    get_registry().add("dataset", DatasetSpec("refusing", "refuses", refuse, (Option("root", "str", "x"),)), TESTS)
    tiny_project = write_tiny_project(tmp_path, dataset={"name": "refusing", "root": "x"})
    result = runner.invoke(app, ["stats", str(tiny_project)])
    assert single_error_line(result) == f"error: {tiny_project}: dataset: the archive's index lists no split"


def test_a_preparer_that_refuses_is_one_line(tmp_path: Path) -> None:
    get_registry().add("preparer", PreparerSpec("refusing", "refuses", refuse, ()), TESTS)
    result = runner.invoke(app, ["prepare", "refusing", str(tmp_path), "--out", str(tmp_path / "out")])
    assert single_error_line(result) == "error: segkit prepare refusing: option: the archive's index lists no split"
    assert not (tmp_path / "out").exists()
