"""Find the CLIP that scores images, through the `conceptlab.evaluators` entry-point group.

The evaluating CLIP is independent of the backend that made the images: `--clip` names a registered evaluator
(its default weights) or gives any CLIP hub id or folder, which the generic `clip` evaluator loads.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from conceptlab.engine.errors import UsageError
from conceptlab.engine.evaluation.metrics import ClipEmbedder
from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.models.model_cache import ModelCache
from conceptlab.engine.models.plugins import find, names, resolve_model
from conceptlab.engine.models.settings import CLIP_ROLE, configured

EVALUATOR_GROUP = "conceptlab.evaluators"


@runtime_checkable
class ClipLoader(Protocol):
    name: str
    default_model: str

    def load(self, model: str, device: torch.device, dtype: torch.dtype, revision: str | None = None) -> ClipEmbedder:
        """Load the CLIP `model` (hub id or folder, at `revision`); raise `BackendError` in one line when absent."""
        ...


def _loader(name: str) -> ClipLoader:
    return find(EVALUATOR_GROUP, name)()


def generic_evaluator() -> str:
    """The evaluator that loads any CLIP id or folder given to `--clip` (it declares `loads_any_clip`); its default
    CLIP is the paper's (openai/clip-vit-large-patch14)."""
    generic = [name for name in names(EVALUATOR_GROUP) if getattr(find(EVALUATOR_GROUP, name), "loads_any_clip", False)]
    if not generic:
        raise UsageError("No installed evaluator loads a CLIP hub id or folder; give --clip an evaluator name.")
    return generic[0]


def load_clip(spec: str, device: torch.device, dtype: torch.dtype, revision: str | None = None) -> ClipEmbedder:
    """`spec` is an evaluator name (its default CLIP), or a CLIP hub id or folder for the generic evaluator."""
    spec = spec.strip()
    if not spec:
        raise UsageError("--clip is empty; give a CLIP hub id, a folder, or an evaluator name.")
    if spec in names(EVALUATOR_GROUP):
        loader = _loader(spec)
        return loader.load(loader.default_model, device, dtype, revision)
    return _loader(generic_evaluator()).load(spec, device, dtype, revision)


def default_clip(choice: ModelChoice) -> str:
    """The backend's `evaluation_clip` (the tiny backend brings a tiny CLIP); the paper's when no backend claims it."""
    try:
        backend, _ = resolve_model(choice.model, choice.backend)
    except UsageError:
        return generic_evaluator()
    return backend.evaluation_clip


def _backend_name(choice: ModelChoice) -> str | None:
    try:
        return resolve_model(choice.model, choice.backend)[0].name
    except UsageError:
        return None


def evaluating_clip(
    spec: str | None, choice: ModelChoice, cache: ModelCache | None = None, revision: str | None = None
) -> ClipEmbedder:
    """The CLIP that scores images: `spec` (`--clip`), else the backend's own (`default_clip`), on `choice`'s device."""
    if spec is None:
        backend = _backend_name(choice)
        spec, revision = configured(backend, CLIP_ROLE, None, revision) if backend else (None, revision)
    chosen = spec or default_clip(choice)

    def load() -> ClipEmbedder:
        return load_clip(chosen, *choice.placement(), revision)

    return (cache or ModelCache()).other(("evaluator", chosen, revision, choice.device, choice.dtype), load)
