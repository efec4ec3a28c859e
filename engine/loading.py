"""Load a backend's prior stack from the user's model, device and dtype words."""

from __future__ import annotations

from dataclasses import dataclass

from conceptlab.engine.backend import Backend, ModelInfo, PriorStack, model_info
from conceptlab.engine.devices import resolve_device, resolve_dtype
from conceptlab.engine.registry import resolve_model


@dataclass(frozen=True)
class ModelChoice:
    """Which model to train against and where: the `--model/--backend/--device/--dtype` of every command."""

    model: str
    """A backend name (its default weights), a hub id or a local folder."""
    backend: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    revision: str | None = None


@dataclass
class LoadedPrior:
    backend: Backend
    stack: PriorStack
    info: ModelInfo


def load_prior(choice: ModelChoice) -> LoadedPrior:
    """Resolve the backend, check device and dtype before any weights are read, then load."""
    backend, model = resolve_model(choice.model, choice.backend)
    device = resolve_device(choice.device)
    dtype = resolve_dtype(choice.dtype, device)
    stack = backend.load_prior(model, device, dtype, choice.revision)
    return LoadedPrior(backend, stack, model_info(backend, model, choice.revision, stack))
