"""The one rich Console every command prints through, and the table of figures it shows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# markup off by default: names, paths and messages come from project files, plugins and file names,
# where "[/]" would end in rich's MarkupError; the few lines with our own markup opt in and escape
# what they interpolate
console = Console(highlight=False, markup=False)
error_console = Console(stderr=True, highlight=False, markup=False)


def print_notes(notes: Iterable[str]) -> None:
    """Each note on its own line, yellow, as written (never cut: a Slurm log keeps all of it)."""
    for note in notes:
        console.print(f"note: {note}", markup=False, style="yellow", soft_wrap=True)


def marked_up(template: str, *values: object) -> str:
    """``template`` (our own rich markup, ``{}`` placeholders) with each value escaped; print it with markup=True."""
    return template.format(*(escape(str(value)) for value in values))


def figures_table(title: str, figures: Mapping[str, float]) -> Table:
    """A two-column table of named figures, four decimals."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        table.add_row(name, f"{value:.4g}" if abs(value) < 1e-3 and value else f"{value:.4f}")
    return table
