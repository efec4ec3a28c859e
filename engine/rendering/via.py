"""`sample --via NAME`: the concept's prior image embedding rendered by another model (a route, see
`conceptlab.engine.portability.routes`), with the concept's slot of the text prompt filled by its category word."""

from __future__ import annotations

import math
from typing import Any

from conceptlab.engine.errors import UsageError
from conceptlab.engine.options import check_bounds
from conceptlab.engine.portability.routes import Route, RoutePipeline, RouteSettings

SIZE_MULTIPLE = 8
"""Stable Diffusion pipelines (SDXL, Stable unCLIP) take sizes that are multiples of 8."""


def route_settings(route: Route, model: str, **chosen: Any) -> RouteSettings:
    """The route's recommendation for `model`, then every value `chosen` (None: not chosen), checked."""
    for option in ("ip_scale", "noise_level"):
        if chosen.get(option) is not None and option not in route.options:
            takes = ", ".join(f"--{name.replace('_', '-')}" for name in sorted(route.options)) or "neither"
            raise UsageError(f"--{option.replace('_', '-')} does not apply to --via {route.name} (it takes {takes}).")
    values = {**route.recommended(model), **{key: value for key, value in chosen.items() if value is not None}}
    settings = RouteSettings(**values)
    check_bounds(settings)
    if settings.size <= 0 or settings.size % SIZE_MULTIPLE:
        raise UsageError(f"--size {settings.size}: --via {route.name} needs a positive multiple of {SIZE_MULTIPLE}.")
    if settings.steps < 1:
        raise UsageError(f"--steps must be at least 1 (got {settings.steps}).")
    for option, value in (("--guidance", settings.guidance), ("--ip-scale", settings.ip_scale)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise UsageError(f"{option} must be a finite number, 0 or more (got {value}).")
    if settings.noise_level is not None and not 0 <= settings.noise_level < 1000:
        raise UsageError(f"--noise-level must be from 0 (no noise) to 999 (got {settings.noise_level}).")
    return settings


def check_route_width(route: Route, model: str, pipeline: RoutePipeline, width: int) -> None:
    if pipeline.width != width:
        raise UsageError(
            f"--via-model {model} takes image embeddings of width {pipeline.width} but the concept's prior makes "
            f"{width}; leave --via-model out for the model --via {route.name} uses with this concept."
        )
