"""Baselines that make images of a category *without* a learned token, found through `conceptlab.baselines`.

A baseline renders "A photo of a {category}" with the negatives as a negative prompt; the same template as the
concepts' images, so the rows of the results table differ only in the method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.models.plugins import find, names

BASELINE_GROUP = "conceptlab.baselines"


@dataclass(frozen=True)
class BaselineRequest:
    """What to render: `count` images of `category` unlike `negatives`, image i from seed `seed + i`."""

    category: str
    negatives: tuple[str, ...]
    count: int
    seed: int
    backend: ModelChoice
    """The prior backend of the run (a baseline on the same model, such as kandinsky-neg, uses it)."""
    model: str | None = None
    """The baseline's own model (a hub id or folder), None for its default."""
    size: int | None = None
    steps: int | None = None
    prior_steps: int | None = None
    """Prior sampling steps, for baselines that run a prior (None: the default)."""
    on_image: Callable[[int], None] | None = None
    """Called with each image's index once it is made."""
    loaded: Any = None
    """The run's `LoadedPrior` and `DecoderStack` when already loaded (baselines on the same model reuse them)."""
    decoder: Any = None


@runtime_checkable
class Baseline(Protocol):
    name: str
    description: str
    uses_backend: bool
    """True when it renders with the run's own prior and decoder (given in the request), like kandinsky-neg."""

    def render(self, request: BaselineRequest) -> list[Any]:
        """Render `request.count` PIL images; raise `BackendError` with one line if its model is absent."""
        ...


def baseline_names() -> tuple[str, ...]:
    """Every installed baseline's name (read from the entry points, nothing loaded): the protocols' default."""
    return tuple(names(BASELINE_GROUP))


def load_baseline(name: str) -> Baseline:
    """Instantiate the baseline registered under `name`."""
    return find(BASELINE_GROUP, name)()


def negative_prompt(negatives: tuple[str, ...]) -> str:
    """The negatives as one negative prompt: "cat, dog"."""
    return ", ".join(negatives)
