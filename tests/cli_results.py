"""Checking what a CLI run printed: the one ``error:`` line the project's standard asks for."""

from __future__ import annotations

from typer.testing import Result


def single_error_line(result: Result) -> str:
    """The one ``error: ...`` line of a run that must fail with exit 2 and no traceback."""
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output and "internal error" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]
