"""Output that is not a terminal (a pipe, a file, a Slurm log) is never cut to a terminal's width."""

from __future__ import annotations

import pytest

from segkit.report.console import console


def test_epoch_line_keeps_every_figure_when_stdout_is_not_a_terminal(capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from segkit.report.keras_callbacks import RichProgress

    monkeypatch.setenv("COLUMNS", "80")  # what a login shell may export into a batch job
    progress = RichProgress(console, epochs=12)
    progress.set_params({"steps": 3})
    progress.on_train_begin()
    progress.on_epoch_end(11, {"val_loss": 0.123456, "val_dice_coef_multiclass": 0.876543,
                               "val_mean_foreground_dice": 0.765432})
    progress.on_train_end()
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("epochs"))
    assert line.rstrip().endswith(
        "12/12 0:00:00 eta 0:00:00 val_loss 0.1235  val_dice_coef_multiclass 0.8765  val_mean_foreground_dice 0.7654"), line


def test_a_long_line_is_printed_whole(capsys: pytest.CaptureFixture[str]) -> None:
    text = "error: " + "a/very/long/path/" * 20 + "image.png: cannot be read"
    console.print(text, markup=False)
    assert capsys.readouterr().out == text + "\n"
