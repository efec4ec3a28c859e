"""Where the command line prints: results to stdout, progress and errors to stderr."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, ProgressColumn, TextColumn
from rich.status import Status

stdout = Console()
stderr = Console(stderr=True)


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping) for scripts."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def error(message: str) -> None:
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


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
