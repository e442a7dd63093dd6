"""The one rich Console every command prints through, and the table of figures it shows."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

console = Console(highlight=False)
error_console = Console(stderr=True, highlight=False)


def figures_table(title: str, figures: Mapping[str, float]) -> Table:
    """A two-column table of named figures, four decimals."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        table.add_row(name, f"{value:.4g}" if abs(value) < 1e-3 and value else f"{value:.4f}")
    return table
