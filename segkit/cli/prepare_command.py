"""``segkit prepare NAME SRC --out DIR``: convert a published dataset layout with a preparer plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from segkit.cli.options import DebugOpt, apply_debug
from segkit.data.names import resolved, shown_path
from segkit.engine.runtime import build_with
from segkit.errors import DataError, ProjectError
from segkit.overrides import parse_value
from segkit.plugins import get_registry
from segkit.report.console import console
from segkit.specs import PreparerRequest
from segkit.validation import Context, validate_table


def parse_options(name: str, items: list[str]) -> dict[str, object]:
    """``key=VALUE`` pairs (TOML values) into a dict; a malformed item is a one-line error."""
    options: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ProjectError(f"segkit prepare {name}", f"--option {item}", "expected KEY=VALUE",
                               "e.g. --option ignore_margin=16")
        options[key.strip()] = parse_value(raw.strip())
    return options


def prepare(
    name: Annotated[str, typer.Argument(help="preparer plugin, e.g. ucsb-bcc (see `segkit plugins`)", show_default=False)],
    source: Annotated[Path, typer.Argument(help="the downloaded dataset folder", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="folder to write train/valid/test into", show_default=False)],
    option: Annotated[Optional[list[str]], typer.Option("--option", help="preparer option KEY=VALUE (repeatable)")] = None,
    debug: DebugOpt = False,
) -> None:
    """Convert a published layout into train/valid/test folders and a project file."""
    apply_debug(debug)
    spec = get_registry().get("preparer", name).spec
    source, out = resolved(source), resolved(out)  # a link loop is one line, not a RuntimeError
    if not source.is_dir():
        raise DataError(f"{shown_path(source)}: not a folder; pass the folder of the downloaded dataset")
    context = Context(source=Path(f"segkit prepare {name}"), overridden=frozenset())
    options = validate_table(parse_options(name, option or []), spec.options, "option", context)
    report = build_with(str(context.source), "option", spec.build, PreparerRequest(source, out, options))
    for split, count in report.counts.items():
        console.print(f"{split}: {count} pairs", markup=False)
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    if report.project_file is not None:
        console.print(f"project: {report.project_file}  (segkit train {report.project_file})", markup=False)


def register(app: typer.Typer) -> None:
    app.command("prepare")(prepare)
