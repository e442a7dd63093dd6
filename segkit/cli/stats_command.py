"""``segkit stats``: what is in a dataset before anyone trains on it (no TensorFlow)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from segkit.classes import ClassInfo, ClassTable
from segkit.cli.options import DebugOpt, SetOpt, apply_debug
from segkit.data.names import refuse_loop, shown_path
from segkit.errors import DataError, ProjectError
from segkit.plugins import get_registry
from segkit.project import load_project
from segkit.report.console import console, print_notes
from segkit.specs import CountedSource, FolderSource
from segkit.stats import SplitFolders, collect_stats, render, write_charts
from segkit.stats.near_duplicates import DEFAULT_THRESHOLD, MAX_THRESHOLD
from segkit.toml_io import write_atomic

#: Used for a bare folder when no project gives the classes: the reference's breast-cancer table.
DEFAULT_TABLE = ClassTable((ClassInfo("background", (0, 0, 0)), ClassInfo("benign", (0, 255, 0)),
                            ClassInfo("malignant", (255, 0, 0))))


def folder_splits(folder: Path) -> dict[str, SplitFolders]:
    """``folder/{images,masks}`` as one split, or ``folder/<split>/{images,masks}`` for each split."""
    if _holds_split(folder):
        return {folder.name: SplitFolders(folder / "images", folder / "masks")}
    splits = {p.name: SplitFolders(p / "images", p / "masks") for p in sorted(folder.iterdir()) if _holds_split(p)}
    if not splits:
        raise DataError(f"{folder}: no images/ and masks/ folders in it or in its subfolders "
                        "(expected FOLDER/images + FOLDER/masks, or FOLDER/<split>/images + masks)")
    return splits


def _holds_split(folder: Path) -> bool:
    """``images`` and ``masks`` are there; a link among them, even a broken one, is listed as a problem."""
    return all((folder / name).is_dir() or (folder / name).is_symlink() for name in ("images", "masks"))


def project_splits(project_file: Path, overrides: list[str]
                   ) -> tuple[dict[str, SplitFolders], ClassTable, CountedSource | None]:
    """The project's folders per split, its classes, and the dataset itself where it counts its own
    labels (a :class:`~segkit.specs.CountedSource`: GeoJSON, not colour masks)."""
    project = load_project(project_file, overrides, get_registry())
    from segkit.engine.components import open_dataset  # only for a project target, not at start-up

    source = open_dataset(project, get_registry())  # the builder guard every command uses (TF-free)
    if not isinstance(source, FolderSource):
        raise DataError(f"dataset '{project.dataset.name}' does not expose its folders; run segkit stats on a folder")
    return dict(source.folders()), project.classes, source if isinstance(source, CountedSource) else None


def stats(
    target: Annotated[Path, typer.Argument(help="project file (TOML) or dataset folder", show_default=False)],
    json_file: Annotated[Optional[Path], typer.Option("--json", help="also write the figures as JSON here")] = None,
    plots: Annotated[Optional[Path], typer.Option("--plots", help="write PNG charts into this folder")] = None,
    classes_from: Annotated[Optional[Path], typer.Option("--classes-from", help="take the class table from this project (folder targets)")] = None,
    threshold: Annotated[Optional[float], typer.Option(help="near-duplicate distance threshold, 0..1 (default 0.1)")] = None,
    set_: SetOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Count pairs, sizes, class pixels and near-duplicate/leaking images of a dataset."""
    apply_debug(debug)
    check_outputs(json_file, plots)
    check_threshold(threshold)
    if not target.exists():
        refuse_loop(target)
        raise DataError(f"{target}: does not exist; pass a project file or a dataset folder")
    labels: CountedSource | None = None
    if target.is_file():
        splits, table, labels = project_splits(target, set_ or [])
    else:
        splits = folder_splits(target)
        table = load_project(classes_from, set_ or []).classes if classes_from else DEFAULT_TABLE
    result = collect_stats(splits, table, duplicate_threshold=threshold, labels=labels)
    render(result, console)
    if target.is_file():
        from segkit.cv.duplicates import fold_duplicate_notes

        project = load_project(target, set_ or [], get_registry())
        print_notes(fold_duplicate_notes(project, get_registry(), result.duplicates))
    if json_file is not None:
        write_atomic(json_file, json.dumps(result.to_json(), indent=2) + "\n")
        console.print(f"written {json_file}", markup=False)
    if plots is not None:
        for path in write_charts(result, plots):
            console.print(f"written {path}", markup=False)


def check_threshold(threshold: float | None) -> None:
    """A distance from 0 to ``MAX_THRESHOLD``; Click lets ``nan`` and ``inf`` through as floats."""
    if threshold is not None and not (math.isfinite(threshold) and 0 <= threshold <= MAX_THRESHOLD):
        raise ProjectError("segkit stats", "--threshold", f"must be a distance from 0 to {MAX_THRESHOLD:g}, "
                           f"got {threshold}", f"0 finds exact copies only, unrelated images lie near 1; "
                           f"the default is {DEFAULT_THRESHOLD:g}")


def check_outputs(json_file: Path | None, plots: Path | None) -> None:
    """Refuse output paths that cannot be written before any file is read (the scan may take minutes)."""
    if json_file is not None and json_file.is_dir():
        raise DataError(f"{shown_path(json_file)}: is a folder; pass a file name for --json, "
                        f"e.g. {shown_path(json_file / 'stats.json')}")
    if plots is not None and plots.exists() and not plots.is_dir():
        raise DataError(f"{shown_path(plots)}: is a file; pass a folder for --plots")


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)
