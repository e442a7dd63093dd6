"""Options shared by the commands, as ``Annotated`` types."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from segkit.cli.errors import DEBUG_ENV

ProjectArg = Annotated[Path, typer.Argument(help="project file (TOML)", show_default=False)]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="override a value: KEY.PATH=VALUE in TOML syntax (repeatable)", show_default=False),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="print only errors and the final summary")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="show tracebacks and TensorFlow's own logging")]
FoldsOpt = Annotated[bool, typer.Option(
    "--folds", help="use the ensemble of the cross-validation's fold models (softmax averaged) instead of one model")]
FoldSubsetOpt = Annotated[Optional[str], typer.Option(
    "--fold-subset", help="only these folds of the ensemble, e.g. 0,2,4 (default: every fold)", show_default=False)]


def apply_debug(debug: bool) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"
