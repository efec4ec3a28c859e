"""Oracles look at the concept's images and name what it resembles (the paper's adaptive negatives).

Oracles live in plugins and register under the `conceptlab.oracles` entry-point group; each entry point is a
factory `(loaded: LoadedPrior, options: OracleOptions) -> Oracle`. Heavy oracles load their weights lazily,
on the first question.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from PIL import Image

from conceptlab.engine.errors import UsageError

if TYPE_CHECKING:
    from conceptlab.engine.loading import LoadedPrior

ORACLE_GROUP = "conceptlab.oracles"
STYLE_CONTENT = "a dog"
"""What the style-mode renders show, painted in the concept's style (the question names it)."""


@dataclass(frozen=True)
class Question:
    """What the oracle is asked about each image: the kind of `category` member, or the art style."""

    category: str | None
    style: bool = False

    @property
    def text(self) -> str:
        if self.style:
            return f"What art style was used in this photo of {STYLE_CONTENT}?"
        return f"What kind of {self.category or 'object'} is in this photo?"


@dataclass(frozen=True)
class OracleOptions:
    model: str | None = None
    """The oracle's own weights (a hub id or folder); None: the oracle's default."""
    vocab_file: Path | None = None


@runtime_checkable
class Oracle(Protocol):
    name: str

    def ask(self, images: list[Image.Image], question: Question, known: list[str]) -> list[str]:
        """One free-text answer per image; `known` are words already constrained (an oracle may skip them)."""
        ...


def oracle_names() -> list[str]:
    return sorted(entry.name for entry in entry_points(group=ORACLE_GROUP))


def load_oracle(name: str, loaded: LoadedPrior, options: OracleOptions) -> Oracle:
    for entry in entry_points(group=ORACLE_GROUP):
        if entry.name == name:
            return entry.load()(loaded, options)
    raise UsageError(f"Unknown oracle {name!r}; installed oracles: {', '.join(oracle_names())}.")
