"""Where the command line prints: results to stdout, progress and errors to stderr."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, ProgressColumn, TextColumn
from rich.status import Status

from conceptlab.engine.io.atomic import json_text
from conceptlab.engine.io.printable import printable

stdout = Console()
stderr = Console(stderr=True)


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping) for scripts."""
    print(json_text(data, default=str))


def shown(value: object) -> str:
    """Text from a file inside a rich markup string: its control characters visible (`printable`), its `[` literal.

    Where a string is printed with `markup=False` or as a `Text`, `printable` alone is the escape.
    """
    return escape(printable(value))


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
