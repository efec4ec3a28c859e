"""The offline tiny world: small models of the real architectures, built locally on first use and cached.

The real plugins never look inside it. Where a user may write `tiny` for a plugin's weights (`--oracle-model tiny`,
`--via-model tiny`, the sd-neg baseline of the tiny backend), the plugin asks this resolver: `reference(kind, model)`
is what to load (the tiny stand-in's folder for `tiny`, else `model` unchanged) and `recommended(kind, model)` the
settings a tiny stand-in runs with. `kind` is the plugin's entry-point name; `STAND_INS` is the one table of what
`tiny` means for each. The tiny backend, evaluator and pipelines (`tiny`, `tiny-sdxl`, `tiny-sd3`) are plugins of
their own, registered in pyproject.toml like the real ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conceptlab.engine.errors import UsageError
from conceptlab.engine.portability.routes import ImageSpace

TINY = "tiny"
"""The model name that means a plugin's tiny stand-in."""
TINY_IMAGE_SPACE = ImageSpace("the tiny world's CLIP", 64)
"""The tiny world's image encoder (`world.EMBED_DIM` wide); the tiny routes are conditioned on it."""


@dataclass(frozen=True)
class StandIn:
    """A plugin's tiny stand-in: the function (`module:function` in this package) that builds it once and returns
    what to load, and the settings it runs with in place of the real model's."""

    folder: str
    recommended: Mapping[str, Any] = field(default_factory=dict)


TINY_ROUTE_SETTINGS = {"size": 32, "steps": 4}
"""The tiny routes paint 32 px pictures; 4 steps keep a render well under a second."""
STAND_INS = {
    "blip2": StandIn("blip2:tiny_blip2_folder"),
    "vilt": StandIn("vilt:tiny_vilt_folder"),
    "qwen2.5-vl": StandIn("qwen_vl:tiny_qwen_vl_folder"),
    "ip-adapter-sdxl": StandIn("portability_routes:tiny_ip_adapter_sdxl", TINY_ROUTE_SETTINGS),
    "unclip": StandIn("portability_routes:tiny_unclip_folder", TINY_ROUTE_SETTINGS),
    "flux-ip-adapter": StandIn("flux_ip_adapter:tiny_flux_ip_adapter", TINY_ROUTE_SETTINGS),
    "sd-neg": StandIn("stable_diffusion:tiny_stable_diffusion_folder"),
}


def _stand_in(kind: str) -> StandIn:
    if kind not in STAND_INS:
        raise UsageError(f"{kind} has no tiny model; give its weights (a hub id or folder) instead of {TINY}.")
    return STAND_INS[kind]


def reference(kind: str, model: str) -> str:
    """What the plugin `kind` loads for `model`: its tiny stand-in's folder (built on first use) for `tiny`."""
    if model != TINY:
        return model
    module, _, function = _stand_in(kind).folder.partition(":")
    return str(getattr(importlib.import_module(f"{__name__}.{module}"), function)())


def recommended(kind: str, model: str) -> dict[str, Any]:
    """The settings the plugin `kind` runs `model` with in place of its own: the stand-in's for `tiny`, else none."""
    return dict(_stand_in(kind).recommended) if model == TINY else {}


def image_spaces() -> dict[ImageSpace, str]:
    """The image space a route accepts the tiny world's concepts in, and its model there (`tiny`)."""
    return {TINY_IMAGE_SPACE: TINY}
