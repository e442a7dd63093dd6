"""``segkit plugins``: what is installed, from which distribution, its keys, and what failed."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from segkit.errors import PluginError
from segkit.options import Option
from segkit.plugins import KINDS, Registry, get_registry, unknown_name_message
from segkit.report.console import console
from segkit.text import visible


def describe(registry: Registry) -> dict[str, Any]:
    entries = [
        {"name": r.name, "kind": kind, "description": r.spec.description, "plugin": r.plugin.name,
         "distribution": r.plugin.distribution, "version": r.plugin.version,
         "options": [o.name for o in r.spec.options], "keys": [describe_option(o) for o in r.spec.options]}
        for kind in KINDS for r in registry.all(kind)
    ]
    problems = [{"plugin": p.name, "distribution": p.distribution, "version": p.version, "status": p.status,
                 "reason": p.reason} for p in registry.plugins if p.status != "loaded"]
    conflicts = [{"kind": kind, "name": name, "reason": reason} for (kind, name), reason in registry.unusable.items()]
    printed = [{"plugin": p.name, "distribution": p.distribution, "version": p.version, "output": p.output}
               for p in registry.plugins if p.output]
    return {"entries": entries, "problems": problems, "conflicts": conflicts, "printed": printed}


def describe_option(option: Option) -> dict[str, Any]:
    """One key of a spec as JSON: a required key has ``default`` null and ``required`` true."""
    return {"name": option.name, "kind": option.kind, "required": option.required,
            "default": None if option.required else _plain(option.default), "help": option.help,
            "minimum": option.minimum, "maximum": option.maximum, "choices": list(option.choices),
            "fields": [describe_option(o) for o in option.fields]}


def _plain(value: Any) -> Any:
    """A default as JSON has it: tuples as lists, anything JSON lacks (a path) as its text."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def _table(report: dict[str, Any]) -> Table:
    table = Table(title="segkit plugins", title_justify="left")
    for column in ("name", "kind", "description", "distribution"):
        table.add_column(column)
    for entry in report["entries"]:
        table.add_row(Text(entry["name"]), entry["kind"], Text(entry["description"]),
                      Text(f"{entry['distribution']} {entry['version']}"))
    return table


def _keys_table(entry: dict[str, Any]) -> Table:
    table = Table(title=f"{entry['kind']} '{entry['name']}': keys", title_justify="left")
    for column in ("key", "kind", "default", "help"):
        table.add_column(column)
    for key in _flat_keys(entry["keys"]):
        default = "(required)" if key["required"] else json.dumps(key["default"])
        table.add_row(Text(key["name"]), key["kind"], Text(default), Text(key["help"]))
    return table


def _flat_keys(keys: list[dict[str, Any]], prefix: str = "") -> list[dict[str, Any]]:
    """Keys of sub-tables as ``table.key`` rows after their table's own row."""
    rows: list[dict[str, Any]] = []
    for key in keys:
        rows.append({**key, "name": prefix + key["name"]})
        rows.extend(_flat_keys(key["fields"], f"{prefix}{key['name']}."))
    return rows


def _only(report: dict[str, Any], name: str) -> dict[str, Any]:
    """The report cut to the entries called ``name`` (of any kind), or a PluginError naming the others."""
    entries = [e for e in report["entries"] if e["name"] == name]
    if not entries:
        raise PluginError(unknown_name_message("plugin entry", name, {e["name"] for e in report["entries"]}))
    return {**report, "entries": entries}


def plugins(
    name: Annotated[str | None, typer.Argument(help="show only the entries with this name, with their keys",
                                                show_default=False)] = None,
    keys: Annotated[bool, typer.Option("--keys", help="also list every entry's keys (kind, default, help)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for machines")] = False,
) -> None:
    """List every model, dataset, loss, metric, callback, preparer, instancer and slide reader installed."""
    report = describe(get_registry())
    if name is not None:
        report = _only(report, name)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    console.print(_table(report))
    if keys or name is not None:
        for entry in report["entries"]:
            console.print(_keys_table(entry) if entry["keys"] else Text(f"{entry['kind']} '{entry['name']}': no keys"))
    _print_notes(report)


def _print_notes(report: dict[str, Any]) -> None:
    """Failures, conflicts and plugin output, each a line whose text is printed as it is (no markup)."""
    for problem in report["problems"]:
        _print_line("red", problem["status"], f"{_plugin(problem)}: {problem['reason']}")
    for conflict in report["conflicts"]:
        _print_line("red", "conflict", f"{conflict['kind']} '{conflict['name']}' {conflict['reason']}")
    for printed in report["printed"]:
        _print_line("yellow", "note", f"{_plugin(printed)} printed while loading:")
        for line in printed["output"].splitlines():
            console.print(Text("    " + visible(line)), soft_wrap=True)


def _plugin(item: dict[str, Any]) -> str:
    return f"plugin '{item['plugin']}' ({item['distribution']} {item['version']})"


def _print_line(style: str, label: str, text: str) -> None:
    console.print(Text.assemble((label, style), ": ", visible(text)), soft_wrap=True)




def register(app: typer.Typer) -> None:
    app.command("plugins")(plugins)
