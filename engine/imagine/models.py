"""Which family `--model` names for `imagine`: a Stable Diffusion pipeline registered in `conceptlab.pipelines`
(`sdxl`, `sd3.5`, their tiny versions), or a Kandinsky backend of `conceptlab.backends` (`kandinsky-2.2`, `tiny`).

The plugins name the models; this room only loads what they name, with diffusers' own pipeline classes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from conceptlab.engine.errors import UsageError
from conceptlab.engine.models.plugins import BACKEND_GROUP, declared_default, find, load_backend, names, resolve_model

PIPELINE_GROUP = "conceptlab.pipelines"
IMAGINE = "imagine"
"""The purpose a backend's or pipeline's `default_for` claims to be the model `imagine` runs when --model is left
out."""


class PipelineModel(Protocol):
    """A `conceptlab.pipelines` entry: a Stable Diffusion family model and its defaults."""

    name: str
    family: str
    """The diffusers pipeline class that loads it: "StableDiffusionXLPipeline", "StableDiffusion3Pipeline" or
    "FluxPipeline"."""
    default_model: str
    steps: int
    guidance: float
    size: int
    default_oracle: str
    default_oracle_model: str | None

    def reference(self, model: str) -> str:
        """What `from_pretrained` loads for `model` (a tiny model's locally built folder)."""
        ...

    def preview_autoencoder(self) -> str | None:
        """A tiny autoencoder (`AutoencoderTiny`) for previews, or None."""
        ...


def pipeline_names() -> list[str]:
    return names(PIPELINE_GROUP)


def default_imagine_model() -> str:
    """The model `imagine` runs when --model is left out: the backend or pipeline declaring itself its default."""
    return declared_default(IMAGINE, (BACKEND_GROUP, PIPELINE_GROUP))


def steerable_backends() -> list[str]:
    """The Kandinsky backends whose decoder pipeline takes a step callback (`decoder_step_callback`)."""
    return [name for name in names(BACKEND_GROUP) if load_backend(name).decoder_step_callback]


def resolve_family(model: str, backend: str | None) -> tuple[PipelineModel | None, str]:
    """`(pipeline model, model)` for a Stable Diffusion family, `(None, model)` for a Kandinsky backend.

    Refuses, before anything loads, a model no family knows and Kandinsky 2.1 (no step callback in its pipeline).
    """
    pipelines = pipeline_names()
    named = model in pipelines or (backend in pipelines and model in names(BACKEND_GROUP))
    if backend is not None and named and backend != model:
        raise UsageError(
            f"--model {model} names its own family; --backend {backend} is for a hub id or folder: leave it out, or "
            f"give --model a {backend} hub id or folder."
        )
    if backend in pipelines or (backend is None and model in pipelines):
        return find(PIPELINE_GROUP, backend or model), model
    if backend is None:
        for name in pipelines:
            entry = find(PIPELINE_GROUP, name)
            if entry.default_model == model:
                return entry, model
        folder = Path(model).expanduser() / "model_index.json"
        entry = _family_of_folder(folder) if folder.is_file() else None
        if entry is not None:
            return entry, model
    if backend is None and model not in names(BACKEND_GROUP):
        families = ", ".join([*pipelines, *steerable_backends()])
        try:
            resolve_model(model, backend)
        except UsageError:
            raise UsageError(
                f"--model {model!r}: not a model imagine knows; give one of {families}, a folder saved with "
                "save_pretrained, or a hub id with --backend."
            ) from None
    chosen, _ = resolve_model(model, backend)
    if not chosen.decoder_step_callback:
        raise UsageError(
            f"imagine cannot steer {chosen.name}: its decoder pipeline has no step callback; use one of "
            f"{', '.join(steerable_backends())} or a Stable Diffusion pipeline ({', '.join(pipelines)})."
        )
    return None, model


def _family_of_folder(model_index: Path) -> PipelineModel | None:
    """The pipeline entry whose family saved this folder, or None (a Kandinsky folder: `--backend` says which)."""
    pipeline_class = json.loads(model_index.read_text(encoding="utf-8")).get("_class_name", "")
    for name in pipeline_names():
        entry = find(PIPELINE_GROUP, name)
        if entry.family == pipeline_class:
            return entry
    return None
