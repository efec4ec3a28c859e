"""Load a backend's prior stack (and its decoder) from the user's model, device and dtype words."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from conceptlab.engine.errors import UsageError
from conceptlab.engine.models.backend import Backend, DecoderStack, ModelInfo, PriorStack, model_info
from conceptlab.engine.models.devices import resolve_device, resolve_dtype
from conceptlab.engine.models.plugins import backend_names, declared_default, resolve_model
from conceptlab.engine.models.settings import configured, load_settings

CONCEPTS = "concepts"
"""The purpose a backend's `default_for` claims to be the model of every command that trains or renders concepts."""


def default_model() -> str:
    """What a command uses when neither --model nor a concept names one: the backend declaring itself the default
    (the official code's prior, Kandinsky 2.1)."""
    return declared_default(CONCEPTS)


class Recorded(Protocol):
    """Anything that records what it was made with (a concept)."""

    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class ModelChoice:
    """Which model to train against and where: the `--model/--backend/--device/--dtype` of every command."""

    model: str | None
    """A backend name (its default weights), a hub id or a local folder; None (only before `for_concepts` or
    `evolve` decide) for the model a concept was made with."""
    backend: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    revision: str | None = None
    decoder: str | None = None
    """The decoder's hub id or local folder; None: the backend's default (or, for concepts, the one they record)."""
    decoder_revision: str | None = None

    @classmethod
    def for_concepts(
        cls,
        concepts: Sequence[Recorded],
        model: str | None = None,
        backend: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        revision: str | None = None,
        decoder: str | None = None,
        decoder_revision: str | None = None,
        *,
        default: str | None = None,
    ) -> ModelChoice:
        """`model` when given, else the model the first concept was trained against, else `default` (None: the
        `default_model()`); the decoder
        likewise: `decoder` when given, else (with the concept's model) the decoder the first concept records."""
        if model is None and concepts:
            first = concepts[0].metadata
            model, backend = first.get("model"), backend or first.get("backend")
            revision = revision or first.get("model_revision")
            if decoder is None:
                decoder, decoder_revision = first.get("decoder"), decoder_revision or first.get("decoder_revision")
        return cls(model or default or default_model(), backend, device, dtype, revision, decoder, decoder_revision)

    @property
    def prior_only(self) -> ModelChoice:
        """This choice without its decoder: what loading the prior depends on (a model cache's key)."""
        return dataclasses.replace(self, decoder=None, decoder_revision=None)

    def placement(self) -> tuple[torch.device, torch.dtype]:
        """The torch device and dtype these words name, checked before any weights are read."""
        device = resolve_device(self.device)
        return device, resolve_dtype(self.dtype, device)


@dataclass
class LoadedPrior:
    backend: Backend
    stack: PriorStack
    info: ModelInfo


def load_prior(choice: ModelChoice) -> LoadedPrior:
    """Resolve the backend, check device and dtype before any weights are read, then load."""
    backend, model = resolve_model(choice.model, choice.backend)
    device, dtype = choice.placement()
    revision = choice.revision
    if revision is None and choice.model in (backend.name, None):
        revision = load_settings().model(backend.name, "prior")[1]
    stack = backend.load_prior(model, device, dtype, revision)
    return LoadedPrior(backend, stack, model_info(backend, model, revision, stack))


def load_decoder(
    loaded: LoadedPrior, model: str | None = None, revision: str | None = None, *, place: torch.device | None = None
) -> DecoderStack:
    """The decoder of `loaded`'s backend (`None`: its default) for the prior's device and dtype.

    `model` is a hub id or a local folder of the same architecture; its image-embedding width must match the prior's.
    None: the settings file's decoder for the backend, else the backend's default.
    `place` loads the weights somewhere else than the compute device (the CPU, to be moved there when used).
    """
    _check_decoder_name(loaded, model)
    model, revision = configured(loaded.backend.name, "decoder", model, revision)
    stack = loaded.stack
    decoder = loaded.backend.load_decoder(model, place or stack.device, stack.dtype, revision)
    decoder.device = stack.device
    decoder.source = _decoder_source(model, loaded.backend)
    decoder.revision = revision
    prior_width = int(stack.prior.config.embedding_dim)
    if decoder.image_embedding_dim != prior_width:
        raise UsageError(
            f"The decoder {model!r} takes image embeddings of width {decoder.image_embedding_dim} but the "
            f"{loaded.backend.name} prior makes {prior_width}; use that backend's decoder (leave --decoder out)."
        )
    return decoder


def _check_decoder_name(loaded: LoadedPrior, model: str | None) -> None:
    """Refuse a `--decoder` that is neither this backend's name, a local folder nor a hub id (`owner/name`)."""
    if model is None or model == loaded.backend.name or Path(model).exists():
        return
    if model in backend_names():
        raise UsageError(
            f"--decoder {model} is another backend's; the prior is {loaded.backend.name}, leave --decoder out."
        )
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", model):
        raise UsageError(
            f"Unknown decoder {model!r}: not a local folder nor a hub id (owner/name); leave --decoder out for "
            f"{loaded.backend.default_decoder}."
        )


def _decoder_source(model: str | None, backend: Backend) -> str:
    """What a concept records as its decoder: the backend's default by its name, a local folder as an absolute path
    (so it means the same from any working directory), a hub id as given."""
    if model in (None, backend.name, backend.default_decoder):
        return backend.default_decoder
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model
