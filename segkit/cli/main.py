"""The ``segkit`` Typer app and its entry point."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from segkit import __version__
from segkit.cli import plugins_command, prepare_command, run_commands, stats_command
from segkit.cli import export_command, init_command
from segkit.cli.errors import MappedGroup, report
from segkit.plugins import DISABLE_ENV, get_registry
from segkit.report.console import console

app = typer.Typer(
    name="segkit",
    cls=MappedGroup,
    help="Semantic segmentation of microscopy and histology images; every part a plugin.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        console.print(f"segkit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    disable_plugin: Annotated[
        Optional[list[str]],
        typer.Option("--disable-plugin", help=f"skip this plugin (entry-point or distribution name); also {DISABLE_ENV}"),
    ] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")] = False,
) -> None:
    if disable_plugin:
        current = [p for p in os.environ.get(DISABLE_ENV, "").split(",") if p]
        os.environ[DISABLE_ENV] = ",".join([*current, *disable_plugin])
        get_registry.cache_clear()


run_commands.register(app)
plugins_command.register(app)
stats_command.register(app)
init_command.register(app)
export_command.register(app)
prepare_command.register(app)


def main() -> None:
    """Console-script entry point. Commands fail through :class:`MappedGroup`; the same table
    (``segkit.cli.errors.ERRORS``) maps anything that escapes the app itself."""
    try:
        app()
    except (Exception, KeyboardInterrupt) as exc:  # last line of defence: one line, not a traceback
        code = report(exc)
        if code is None:
            raise
        sys.exit(code)
