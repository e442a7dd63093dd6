"""``segkit plugins``: what is installed, from which distribution, and what failed."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from segkit.cli.errors import mapped
from segkit.plugins import KINDS, Registry, get_registry
from segkit.report.console import console, marked_up


def describe(registry: Registry) -> dict[str, Any]:
    entries = [
        {"name": r.name, "kind": kind, "description": r.spec.description, "plugin": r.plugin.name,
         "distribution": r.plugin.distribution, "version": r.plugin.version,
         "options": [o.name for o in r.spec.options]}
        for kind in KINDS for r in registry.all(kind)
    ]
    problems = [{"plugin": p.name, "distribution": p.distribution, "version": p.version, "status": p.status,
                 "reason": p.reason} for p in registry.plugins if p.status != "loaded"]
    conflicts = [{"kind": kind, "name": name, "reason": reason} for (kind, name), reason in registry.unusable.items()]
    return {"entries": entries, "problems": problems, "conflicts": conflicts}


def _table(report: dict[str, Any]) -> Table:
    table = Table(title="segkit plugins", title_justify="left")
    for column in ("name", "kind", "description", "distribution"):
        table.add_column(column)
    for entry in report["entries"]:
        table.add_row(entry["name"], entry["kind"], entry["description"],
                      f"{entry['distribution']} {entry['version']}")
    return table


@mapped
def plugins(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for machines")] = False,
) -> None:
    """List every model, dataset, loss, metric, callback and preparer the installed plugins provide."""
    report = describe(get_registry())
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    console.print(_table(report))
    for problem in report["problems"]:
        console.print(marked_up("[red]{}[/]: plugin '{}' ({} {}): {}", problem["status"], problem["plugin"],
                                problem["distribution"], problem["version"], problem["reason"]), markup=True)
    for conflict in report["conflicts"]:
        console.print(marked_up("[red]conflict[/]: {} '{}' {}", conflict["kind"], conflict["name"], conflict["reason"]),
                      markup=True)


def register(app: typer.Typer) -> None:
    app.command("plugins")(plugins)
