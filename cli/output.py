"""Where the command line prints: results to stdout, progress and errors to stderr."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

stdout = Console()
stderr = Console(stderr=True)


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping) for scripts."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def error(message: str) -> None:
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
