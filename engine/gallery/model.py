"""What the gallery is made of: concepts found under a folder, their pictures and metrics, what was skipped.

The scan fills these in; the page and the picture copies read them. Both sides import this module, never
each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def concept_anchor(sha256: str) -> str:
    """The id of a concept's card in the page (graph nodes and parent links point to it)."""
    return f"concept-{sha256[:16]}"


@dataclass(frozen=True)
class Pictures:
    """What a concept's run folder holds to look at (any of them may be missing)."""

    strip: Path | None = None
    latest: tuple[Path, ...] = ()
    """The last checkpoint's renders, `images/step-XXXX-seed-S.png`."""
    similarities: Path | None = None
    grids: tuple[Path, ...] = ()
    """Sample grids (`*-grid.png`) in the run folder or under its `samples/`, where `sample` writes by default."""
    evaluated: tuple[Path, ...] = ()
    """Renders made to score the concept (`evaluate` jobs, the protocol), found anywhere under the folder."""

    def all(self) -> list[Path]:
        pictures = (self.strip, *self.latest, self.similarities, *self.grids, *self.evaluated)
        return [p for p in pictures if p is not None]


@dataclass
class GalleryConcept:
    """One concept of the gallery: its record, every path it was found at, its pictures and metrics."""

    token: str
    sha256: str
    metadata: dict[str, Any]
    paths: list[Path]
    pictures: Pictures = field(default_factory=Pictures)
    metrics: dict[str, Any] | None = None
    """The concept's row of an evaluation JSON (`conceptlab evaluate --json`, or the protocol's `metrics.json`)."""

    @property
    def anchor(self) -> str:
        return concept_anchor(self.sha256)


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str


@dataclass(frozen=True)
class GalleryScan:
    """Everything found under a folder."""

    concepts: list[GalleryConcept]
    skipped: list[SkippedFile]
    metrics_files: list[Path]
    unmatched_rows: list[str]
    """Evaluation rows named like no concept here, or like several (a token alone cannot tell them apart)."""
