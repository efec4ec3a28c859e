"""Where the command line prints: results to stdout, progress and errors to stderr."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import Progress, ProgressColumn, TextColumn
from rich.status import Status
from rich.table import Table
from rich.text import Text

from conceptlab.engine.io.atomic import json_text
from conceptlab.engine.io.printable import printable

stdout = Console()
UNBOUNDED_WIDTH = 100_000
"""Wide enough for any table: where stdout is not a terminal a table takes the width its cells need."""
stderr = Console(stderr=True)


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping) for scripts."""
    print(json_text(data, default=str))


def shown(value: object) -> str:
    """Text from a file inside a rich markup string: its control characters visible (`printable`), its `[` literal.

    Where a string is printed with `markup=False` or as a `Text`, `printable` alone is the escape.
    """
    return escape(printable(value))


def show_table(table: Table, plain: bool = False) -> None:
    """`table` on stdout: drawn to fit a terminal; at its full width where stdout is a pipe or a file (`| tee log`
    never cuts a column or wraps a word); with `plain`, as tab-separated values (header row first, no markup)."""
    if plain:
        print_tsv(table)
        return
    if stdout.is_terminal:
        stdout.print(table)
        return
    width = Measurement.get(stdout, stdout.options.update_width(UNBOUNDED_WIDTH), table).maximum
    Console(width=width, no_color=True, highlight=False).print(table)


def print_tsv(table: Table) -> None:
    """The table's header and rows as tab-separated plain text (tabs and newlines in cells become spaces)."""

    def plain(cell: object) -> str:
        text = Text.from_markup(cell) if isinstance(cell, str) else cell
        return " ".join(str(getattr(text, "plain", text)).split())

    columns = [[plain(column.header), *(plain(cell) for cell in column.cells)] for column in table.columns]
    for row in zip(*columns, strict=True):
        print("\t".join(row))


def error(message: str) -> None:
    stderr.print(f"[bold red]error:[/] {shown(message)}", highlight=False, soft_wrap=True)


class _QuietStatus:
    """A spinner that shows nothing: where stderr is a pipe or a log file there is nothing to animate, and a
    stopped live display would leave a blank line before the next message."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def update(self, *args: Any, **kwargs: Any) -> None: ...

    def __enter__(self) -> _QuietStatus:
        return self

    def __exit__(self, *exception: object) -> None: ...


def spinner(text: str) -> Status | _QuietStatus:
    """A spinner on stderr while something loads, only when stderr is a terminal."""
    return stderr.status(text) if stderr.is_terminal else _QuietStatus()


def progress_bar(*columns: ProgressColumn | str) -> Progress:
    """A transient progress bar on stderr, drawn only when stderr is a terminal (see `_QuietStatus`)."""
    return Progress(*columns, console=stderr, transient=True, disable=not stderr.is_terminal)


def description_column() -> TextColumn:
    """A progress bar's bold description, shown as typed: a token or job name like `<x[/y]>` is not markup."""
    return TextColumn("{task.description}", style="bold", markup=False)
