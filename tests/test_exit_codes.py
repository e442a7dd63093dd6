"""Exit codes and the one error table: the same line and code whichever way a failure leaves segkit."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from segkit.cli import main as cli_main
from segkit.cli.errors import one_line
from segkit.errors import DataError, ExitCode
from segkit_process import output_of, run_segkit

runner = CliRunner()


@pytest.mark.parametrize("value", ["0", "false", ""])
def test_segkit_debug_off_gives_one_line_from_a_command(tmp_path: Path, value: str) -> None:
    result = run_segkit(["eval", tmp_path / "missing.toml"], timeout=120, SEGKIT_DEBUG=value)
    assert result.returncode == ExitCode.USAGE, output_of(result)
    assert "Traceback" not in result.stdout
    assert [line for line in result.stdout.splitlines() if line.startswith("error: ")] == \
        [line for line in result.stdout.splitlines() if line.strip()], result.stdout


@pytest.mark.parametrize(("value", "traceback"), [("0", False), ("false", False), ("1", True)])
def test_segkit_debug_means_the_same_outside_a_command(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str],
                                                       value: str, traceback: bool) -> None:
    """A failure that escapes the app itself (main()'s own guard) follows the same SEGKIT_DEBUG rule."""
    def broken_app() -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(cli_main, "app", broken_app)
    monkeypatch.setenv("SEGKIT_DEBUG", value)
    if traceback:
        with pytest.raises(RuntimeError, match="boom"):
            cli_main.main()
        return
    with pytest.raises(SystemExit) as exited:
        cli_main.main()
    assert exited.value.code == ExitCode.INTERNAL
    assert capsys.readouterr().err == "internal error: RuntimeError: boom (run with --debug for the traceback)\n"


def test_an_interrupt_inside_a_command_exits_130(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("segkit.cli.run_commands.load_project", interrupted)
    result = runner.invoke(cli_main.app, ["eval", str(tmp_path / "p.toml")])
    assert result.exit_code == ExitCode.INTERRUPTED == 130
    assert result.output == "interrupted\n"


@pytest.mark.parametrize(("exc", "line", "code"), [
    (DataError("a.png: broken (re-export it)"), "error: a.png: broken (re-export it)", 2),
    (PermissionError(13, "Permission denied", "/x"), "error: /x: permission denied; choose a folder you can write to", 2),
    (FileNotFoundError(2, "No such file or directory", "/y"), "error: /y: No such file or directory; check the path", 2),
    (OSError(28, "No space left on device", "/z"), "error: /z: No space left on device", 2),
    (OSError(28, "No space left on device"), ("internal error: OSError: [Errno 28] No space left on device "
                                              "(run with --debug for the traceback)"), 1),
    (KeyError("k"), "internal error: KeyError: 'k' (run with --debug for the traceback)", 1),
])
def test_the_error_table_keeps_every_message(exc: BaseException, line: str, code: int) -> None:
    assert one_line(exc) == (line, code)
