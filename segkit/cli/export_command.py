"""``segkit export``: the trained model as a SavedModel, a .keras file, ONNX or a bioimage.io package."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from segkit.cli.options import DebugOpt, FoldsOpt, FoldSubsetOpt, ProjectArg, SetOpt, apply_debug
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
    bioimageio = "bioimageio"


FormatOpt = Annotated[ExportFormat, typer.Option("--format", "-f", help="savedmodel: uint8 image in, mask out; "
                                                 "keras: the bare network; onnx: the savedmodel graph as ONNX; "
                                                 "bioimageio: a bioimage.io model package (zip)")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="where to write (default <output_dir>/export/)",
                                                show_default=False)]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="replace an existing file that is not a segkit export")]
AuthorOpt = Annotated[Optional[list[str]], typer.Option("--author", help="bioimageio: an author's name (repeat for more)",
                                                        show_default=False)]
LicenseOpt = Annotated[Optional[str], typer.Option("--license", help="bioimageio: SPDX licence id of the weights, "
                                                   "e.g. CC-BY-4.0", show_default=False)]
CiteOpt = Annotated[Optional[list[str]], typer.Option("--cite", help="bioimageio: 'TEXT | DOI' or 'TEXT | https://URL' "
                                                      "(repeat for more)", show_default=False)]


def export(project: ProjectArg, format_: FormatOpt = ExportFormat.savedmodel, out: OutOpt = None,
           overwrite: OverwriteOpt = False, author: AuthorOpt = None, license_: LicenseOpt = None,
           cite: CiteOpt = None, folds: FoldsOpt = False, fold_subset: FoldSubsetOpt = None,
           set_: SetOpt = None, debug: DebugOpt = False) -> None:
    """Export the best model (with --folds the fold ensemble, in one graph); the savedmodel and onnx graphs
    resize or tile inside, as segkit infer does; a bioimageio package holds the bare network for clients
    that tile themselves (QuPath, deepImageJ)."""
    from segkit.engine.export import ExportError, PackageFields, require_converter
    from segkit.engine.export import export as run_export
    from segkit.cv.ensemble import chosen_folds

    apply_debug(debug)
    require_converter(format_.value)  # before validation and TensorFlow: the cheapest refusal first
    package = PackageFields(tuple(author or ()), license_, tuple(cite or ()))
    if format_ != ExportFormat.bioimageio and package != PackageFields():
        raise ExportError("--author/--license/--cite: only a bioimage.io package has them (add --format bioimageio)")
    loaded = check_trained_with(load_project(project, set_ or [], get_registry()))
    print_notes(loaded.notes)
    ensemble = chosen_folds(loaded, folds, fold_subset)
    result = run_export(loaded, format_.value, out, overwrite, package, ensemble)
    for path in result.replaced:
        console.print(f"replaced {path} (--overwrite; it was not a segkit export)", markup=False, soft_wrap=True)
    how = "tiles (Gaussian-blended windows)" if result.mode == "tile" else "resizes"
    of_folds = f" (ensemble of folds {', '.join(map(str, ensemble))})" if ensemble is not None else ""
    console.print(f"{result.format}{of_folds} → {result.path}", markup=False, soft_wrap=True)
    if result.format == "bioimageio":
        from segkit.engine.export_bioimageio import missing_fields

        print_notes(tuple(missing_fields(package)))
        console.print("input: uint8 (batch, y, x, channel) tiles at the model's size; output: softmax per class",
                      markup=False, soft_wrap=True)
    elif result.format != "keras":
        console.print(f"input: uint8 image of any size; the graph {how} and returns 'mask' and 'probabilities'",
                      markup=False, soft_wrap=True)
    console.print(f"classes and shapes → {result.metadata}", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
