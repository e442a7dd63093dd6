"""``segkit init`` never writes a project that cannot run or cannot load.

Before: ``--size 100000`` wrote a project no machine could train, and a project that failed
validation left its data folders behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_results import single_error_line
from typer.testing import CliRunner, Result

from segkit.cli import init_command
from segkit.cli.main import app
from segkit.options import Option

runner = CliRunner()


def init(tmp_path: Path, *args: str) -> Result:
    return runner.invoke(app, ["init", "demo", "--dir", str(tmp_path), *args])


def with_image_width_maximum(monkeypatch: pytest.MonkeyPatch, maximum: float | None) -> None:
    keys = tuple(
        Option(o.name, o.kind, o.default, o.help, o.minimum, maximum) if o.name in ("image_width", "image_height")
        else o
        for o in init_command.MODEL_KEYS
    )
    monkeypatch.setattr(init_command, "MODEL_KEYS", keys)


def test_a_size_of_100000_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    line = single_error_line(init(tmp_path, "--size", "100000"))
    assert line.startswith("error: segkit init: --size: 100000 is more than "), line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size", ["100000", "4112"])
def test_without_a_declared_maximum_init_stops_at_4096(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: str
) -> None:
    with_image_width_maximum(monkeypatch, None)
    line = single_error_line(init(tmp_path, "--size", size))
    assert line == (f"error: segkit init: --size: {size} is more than 4096 pixels a side, the largest model "
                    "input segkit init writes (one such image's activations take GiBs) (train on tiles of "
                    "large images instead: e.g. --size 512, then [augment] crop = true)")
    assert list(tmp_path.iterdir()) == []


def test_the_limit_is_the_one_the_project_declares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_image_width_maximum(monkeypatch, 1024)
    line = single_error_line(init(tmp_path, "--size", "2048"))
    assert "2048 is more than 1024 pixels a side, the most [model] image_width and image_height accept" in line
    assert list(tmp_path.iterdir()) == []


def test_a_project_that_would_not_load_is_never_written(tmp_path: Path) -> None:
    line = single_error_line(init(tmp_path, "--classes", "a:1,2,3", "--classes", "a:1,2,3"))
    assert line.startswith(f"error: {tmp_path / 'demo' / 'project.toml'}: classes.1"), line
    assert list(tmp_path.iterdir()) == []


def test_the_largest_size_is_written_and_loads(tmp_path: Path) -> None:
    largest = init_command.size_limit()[0] // 16 * 16  # init's sizes are multiples of 16
    result = init(tmp_path, "--size", str(largest))
    assert result.exit_code == 0, result.output
    text = (tmp_path / "demo" / "project.toml").read_text()
    assert f"image_width = {largest}\n" in text and f"image_height = {largest}\n" in text
