"""The tiny prior, loaded once per test session and lent to each test as a copy of what a test can change.

A test may add tokens (the tokenizer and the text encoder's embedding), train, step the scheduler or move modules;
none of that may reach the next test. The modules are copied for every test (a few milliseconds: the tiny world's
models are small). The tokenizer is the costly part to copy (its vocabulary is CLIP's), so it is shared while it
stays as loaded and replaced by a fresh copy only after a test that added words to it.
"""

from __future__ import annotations

import copy
import dataclasses

import torch

from conceptlab.engine.models.backend import ModelInfo
from conceptlab.engine.models.loading import LoadedPrior
from conceptlab.engine.prior.tokens import PlaceholderEmbedding


def _fingerprint(loaded: LoadedPrior) -> tuple:
    """What a test could change in a load: its words, its token embedding, its weights and their training flags."""
    stack = loaded.stack
    modules = (stack.text_encoder, stack.prior, stack.image_encoder)
    with torch.no_grad():
        weights = tuple(float(p.double().sum()) for module in modules for p in module.parameters())
    flags = tuple(p.requires_grad for module in modules for p in module.parameters())
    embedding = type(stack.text_encoder.get_input_embeddings()).__name__
    return len(stack.tokenizer), stack.tokenizer.get_added_vocab(), embedding, weights, flags


class SharedTiny:
    """One load (never handed out) and the loans made from it."""

    def __init__(self, loaded: LoadedPrior):
        self._loaded = loaded
        self._as_loaded = _fingerprint(loaded)
        self._words = loaded.stack.tokenizer.get_added_vocab()
        self._tokenizer = copy.deepcopy(loaded.stack.tokenizer)

    @property
    def info(self) -> ModelInfo:
        return self._loaded.info

    def lend(self) -> LoadedPrior:
        """A load as `load_prior` returns it, whose modules and scheduler are this test's own."""
        stack = self._loaded.stack
        own = dataclasses.replace(
            stack,
            tokenizer=self._tokenizer,
            text_encoder=copy.deepcopy(stack.text_encoder),
            prior=copy.deepcopy(stack.prior),
            scheduler=copy.deepcopy(stack.scheduler),
            image_encoder=copy.deepcopy(stack.image_encoder),
        )
        return LoadedPrior(self._loaded.backend, own, self._loaded.info)

    def take_back(self, lent: LoadedPrior) -> None:
        """After a test: a tokenizer that learnt words is replaced; the shared load must be as it was loaded."""
        if lent.stack.tokenizer is self._tokenizer and self._tokenizer.get_added_vocab() != self._words:
            self._tokenizer = copy.deepcopy(self._loaded.stack.tokenizer)
        assert _fingerprint(self._loaded) == self._as_loaded, "a test changed the shared tiny prior"
        assert not isinstance(self._loaded.stack.text_encoder.get_input_embeddings(), PlaceholderEmbedding)
