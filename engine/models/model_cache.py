"""Models loaded once and shared: by one command's steps, by the jobs of a batch, by a protocol's renders."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import torch

from conceptlab.engine.models.backend import DecoderStack
from conceptlab.engine.models.loading import LoadedPrior, ModelChoice, load_decoder, load_prior

Model = TypeVar("Model")


class ModelCache:
    """Priors, decoders and any other model (an evaluating CLIP) loaded on first use, then reused.

    Nothing is loaded until asked for, so a command that turns out to need no model loads none.
    """

    def __init__(self) -> None:
        self._priors: dict[ModelChoice, LoadedPrior] = {}
        self._decoders: dict[tuple, DecoderStack] = {}
        self._others: dict[Hashable, Any] = {}

    def prior(self, choice: ModelChoice) -> LoadedPrior:
        key = choice.prior_only
        if key not in self._priors:
            self._priors[key] = load_prior(key)
        return self._priors[key]

    def decoder(
        self,
        loaded: LoadedPrior,
        model: str | None = None,
        revision: str | None = None,
        *,
        place: torch.device | None = None,
    ) -> DecoderStack:
        """The decoder of `loaded` (see `load_decoder`; `place`: where its weights wait when not in use)."""
        key = (id(loaded), model, revision, place)
        if key not in self._decoders:
            self._decoders[key] = load_decoder(loaded, model, revision, place=place)
        return self._decoders[key]

    def other(self, key: Hashable, load: Callable[[], Model]) -> Model:
        """The model `load()` returns, loaded once per `key`."""
        if key not in self._others:
            self._others[key] = load()
        return self._others[key]

    def clear(self) -> None:
        """Forget every model (after a failed job, whose half-done work may have changed a tokenizer)."""
        self._priors.clear()
        self._decoders.clear()
        self._others.clear()
