"""Checking what a CLI run printed (the one ``error:`` line the project's standard asks for) and
what it left on disk."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from segkit.cli.main import app
from tiny_data import write_tiny_project

runner = CliRunner()


def invoke(*args: object) -> Result:
    """``segkit ARGS`` in this process (typer's CliRunner), every argument as a string."""
    return runner.invoke(app, [str(a) for a in args])


def trained_tiny_project(folder: Path) -> Path:
    """The tiny project in ``folder``, trained for one real epoch into ``folder/run``."""
    project = write_tiny_project(folder, epochs=1)
    result = invoke("train", project, "--quiet")
    assert result.exit_code == 0, result.output
    return project


def error_line(output: str, exit_code: int) -> str:
    """The one ``error: ...`` line of a clean failure: exit 2, no traceback, no internal error."""
    assert exit_code == 2, output
    assert "Traceback" not in output and "internal error" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


def single_error_line(result: Result) -> str:
    """The one ``error: ...`` line of a run that must fail with exit 2 and no traceback."""
    return error_line(result.output, result.exit_code)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) with its bytes; {} when the folder is absent."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
