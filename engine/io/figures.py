"""Figures (matplotlib, without pyplot's global state: each figure draws on the non-interactive Agg canvas), written
atomically in the format the file's extension names."""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

from conceptlab.engine.errors import UsageError
from conceptlab.engine.io.atomic import write_atomically

FIGURE_FORMATS = ("png", "svg", "pdf")
NO_DATES = {"png": {}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
"""Metadata that would make two saves of one figure differ (a timestamp) is left out."""


def figure_format(path: Path, option: str = "--plot") -> str:
    """The format `path`'s extension names; anything else is refused in one line."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in FIGURE_FORMATS:
        raise UsageError(f"{option} {path}: give a file ending in .png, .svg or .pdf (the format follows the name).")
    return suffix


def write_figure(path: Path, figure: Figure, dpi: int = 150) -> None:
    """Save `figure` to `path` as PNG, SVG or PDF (by extension), through a temporary file and a rename."""
    kind = figure_format(path)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=kind, dpi=dpi, bbox_inches="tight", metadata=NO_DATES[kind])
    write_atomically(path, buffer.getvalue())
