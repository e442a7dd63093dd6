"""The one rich Console every command prints through, and the table of figures it shows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.table import Table

#: The width given to output that is not a terminal: wide enough that nothing is cut or wrapped.
UNBOUNDED_WIDTH = 100_000


class WholeLineConsole(Console):
    """A Console that cuts lines to the terminal's width only when it writes to a terminal.

    Written to a file or a pipe (``segkit plugins | cat``, a Slurm log) rich would fall back to 80
    columns (or the width of the terminal the command was started from) and cut names and epoch
    figures with an ellipsis; there no width limits the reader, so lines are kept whole. Tables
    do not expand, so they are only as wide as what they hold.
    """

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        return size if self.is_terminal else ConsoleDimensions(UNBOUNDED_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


# markup off by default: names, paths and messages come from project files, plugins and file names,
# where "[/]" would end in rich's MarkupError; the few lines with our own markup opt in and escape
# what they interpolate
console = WholeLineConsole(highlight=False, markup=False)
error_console = WholeLineConsole(stderr=True, highlight=False, markup=False)


def print_notes(notes: Iterable[str | None], quiet: bool = False, to: Console | None = None) -> None:
    """Each note on its own line, yellow, as written (never cut: a Slurm log keeps all of it), on ``to``
    (default the shared console); ``quiet`` (--quiet) leaves only errors and the final summary."""
    for note in notes:
        if note and not quiet:
            (console if to is None else to).print(f"note: {note}", markup=False, style="yellow", soft_wrap=True)


def marked_up(template: str, *values: object) -> str:
    """``template`` (our own rich markup, ``{}`` placeholders) with each value escaped; print it with markup=True."""
    return template.format(*(escape(str(value)) for value in values))


def figures_table(title: str, figures: Mapping[str, float]) -> Table:
    """A two-column table of named figures, four decimals (counts, given as ints, whole)."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        shown = str(value) if isinstance(value, int) else f"{value:.4g}" if abs(value) < 1e-3 and value else f"{value:.4f}"
        table.add_row(name, shown)
    return table
