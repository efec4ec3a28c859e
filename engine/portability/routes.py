"""Routes: other models that render a concept's prior image embedding (`sample --via NAME`).

A concept lives in the image space of its backend's CLIP image encoder (backends declare it as `image_space`).
A route (entry-point group `conceptlab.routes`) declares the image spaces its models are conditioned on, each with
the model it loads by default; a concept whose space no route of that name takes is refused before any weights
load, in one line naming the routes that would fit. Equal widths are not enough: two CLIP image encoders of the
same width embed images differently, so spaces are compared by encoder, not by size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import PIL.Image
import torch

from conceptlab.engine.concept.file import Concept
from conceptlab.engine.errors import UsageError
from conceptlab.engine.models.plugins import backend_names, find, load_backend, names

ROUTE_GROUP = "conceptlab.routes"


@dataclass(frozen=True)
class ImageSpace:
    """A CLIP image-embedding space: the image encoder that defines it, and its width."""

    encoder: str
    width: int

    def __str__(self) -> str:
        return f"{self.encoder}, {self.width}-d"


@dataclass(frozen=True)
class RouteSettings:
    """How a route renders: size, steps and guidance of its pipeline, and the options only some routes take."""

    size: int
    steps: int
    guidance: float
    ip_scale: float | None = None
    noise_level: int | None = None


class RoutePipeline(Protocol):
    """A loaded route: takes `[1, width]` image embeddings and a text prompt, returns one image per call."""

    width: int

    def render(self, prompt: str, image_embeds: torch.Tensor, seed: int, settings: RouteSettings) -> PIL.Image.Image:
        """One image from one seed (a CPU generator seeded with it, as the rest of conceptlab)."""
        ...


class Route(Protocol):
    name: str
    spaces: Mapping[ImageSpace, str]
    """The image spaces its models are conditioned on, each with the model (id or `tiny`) loaded for it by default."""
    options: frozenset[str]
    """The route-only settings it takes (`ip_scale`, `noise_level`); others are refused, never ignored."""

    def recommended(self, model: str) -> dict[str, Any]:
        """Default `size`, `steps`, `guidance` (and route options) for `model`."""
        ...

    def load(self, model: str, device: torch.device, dtype: torch.dtype) -> RoutePipeline:
        """Load `model` (a hub id, a local folder or `tiny`); raise `BackendError` with one line if absent."""
        ...


def concept_space(concept: Concept) -> ImageSpace | None:
    """The image space of the backend the concept was trained for (None: unknown backend or none declared)."""
    backend = concept.metadata.get("backend")
    if backend not in backend_names():
        return None
    return getattr(load_backend(backend), "image_space", None)


def load_route(name: str) -> Route:
    return find(ROUTE_GROUP, name)()


def route_for(concept: Concept, name: str, source: str) -> tuple[Route, str]:
    """The route `name` and its default model for the concept's image space; refuse a space it does not take."""
    route = load_route(name)
    space = concept_space(concept)
    if space is not None and space in route.spaces:
        return route, route.spaces[space]
    backend = concept.metadata.get("backend")
    takes = "; ".join(str(taken) for taken in route.spaces)
    fitting = [other for other in names(ROUTE_GROUP) if space is not None and space in load_route(other).spaces]
    instead = f"use --via {' or --via '.join(fitting)}" if fitting else "no installed route fits it"
    lives = f"lives in {space}" if space else "declares no image space"
    raise UsageError(f"{source} ({backend}) {lives}, but --via {name} takes {takes}; {instead}.")


def category_word(concept: Concept) -> str:
    """The word that stands for the concept in a route's text prompt: its category, else its initializer."""
    for key in ("category", "initializer"):
        value = concept.metadata.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""
