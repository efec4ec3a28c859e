"""Shared fixtures: the tiny world (built once, cached) loaded through the real `from_pretrained` path."""

from __future__ import annotations

import os
from collections.abc import Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may download anything
os.environ.setdefault("CONCEPTLAB_CONFIG", "")  # no settings file of the machine applies (tests set their own)

import pytest
import torch
from shared_models import SharedTiny

from conceptlab.cli.app import main
from conceptlab.engine.models.backend import DecoderStack, PriorStack
from conceptlab.engine.models.loading import LoadedPrior, ModelChoice, load_prior
from conceptlab.engine.models.plugins import load_backend


@pytest.fixture(scope="session")
def shared_tiny() -> SharedTiny:
    """The tiny backend, loaded once per session through the real `load_prior` path."""
    return SharedTiny(load_prior(ModelChoice(model="tiny", device="cpu", dtype="float32")))


@pytest.fixture
def tiny(shared_tiny: SharedTiny) -> Iterator[LoadedPrior]:
    """The tiny backend as a fresh load gives it; a test may add tokens, train or move its modules."""
    lent = shared_tiny.lend()
    yield lent
    shared_tiny.take_back(lent)


@pytest.fixture
def stack(tiny: LoadedPrior) -> PriorStack:
    return tiny.stack


@pytest.fixture(scope="session")
def tiny_decoder() -> DecoderStack:
    """The tiny decoder, loaded once: rendering never changes it."""
    return load_backend("tiny").load_decoder(None, torch.device("cpu"), torch.float32)


@pytest.fixture
def run_cli(capsys):
    """Run `conceptlab ARGS...` in-process; return (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(2)
