"""``segkit export``: the trained model as a SavedModel, a .keras file or ONNX, for serving without segkit."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from segkit.cli.options import DebugOpt, ProjectArg, SetOpt, apply_debug
from segkit.plugins import get_registry
from segkit.project import load_project
from segkit.report.console import console, print_notes
from segkit.run_record import check_trained_with

if TYPE_CHECKING:
    pass


class ExportFormat(str, Enum):
    savedmodel = "savedmodel"
    keras = "keras"
    onnx = "onnx"


FormatOpt = Annotated[ExportFormat, typer.Option("--format", "-f", help="savedmodel: uint8 image in, mask out; "
                                                 "keras: the bare network; onnx: the savedmodel graph as ONNX")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="where to write (default <output_dir>/export/)",
                                                show_default=False)]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="replace an existing file that is not a segkit export")]


def export(project: ProjectArg, format_: FormatOpt = ExportFormat.savedmodel, out: OutOpt = None,
           overwrite: OverwriteOpt = False, set_: SetOpt = None, debug: DebugOpt = False) -> None:
    """Export the best model; the savedmodel and onnx graphs resize or tile inside, as segkit infer does."""
    from segkit.engine.export import export as run_export
    from segkit.engine.export import require_converter

    apply_debug(debug)
    require_converter(format_.value)  # before validation and TensorFlow: the cheapest refusal first
    loaded = check_trained_with(load_project(project, set_ or [], get_registry()))
    print_notes(loaded.notes)
    result = run_export(loaded, format_.value, out, overwrite)
    for path in result.replaced:
        console.print(f"replaced {path} (--overwrite; it was not a segkit export)", markup=False, soft_wrap=True)
    how = "tiles (Gaussian-blended windows)" if result.mode == "tile" else "resizes"
    console.print(f"{result.format} → {result.path}", markup=False, soft_wrap=True)
    if result.format != "keras":
        console.print(f"input: uint8 image of any size; the graph {how} and returns 'mask' and 'probabilities'",
                      markup=False, soft_wrap=True)
    console.print(f"classes and shapes → {result.metadata}", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
