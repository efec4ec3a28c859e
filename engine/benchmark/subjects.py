"""What the benchmark times, as plugins declare it: prior stacks for the step benchmark and random real-width
pipelines for the imagine rows, each found by name through its entry-point group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from conceptlab.engine.models.backend import PriorStack
from conceptlab.engine.models.plugins import find, names

if TYPE_CHECKING:
    from conceptlab.engine.adaptive.oracle import Oracle
    from conceptlab.engine.benchmark.step import ConstraintEncoder
    from conceptlab.engine.imagine.request import ImagineRequest
    from conceptlab.engine.imagine.run import Loaded
    from conceptlab.engine.models.backend import DecoderStack
    from conceptlab.engine.models.loading import LoadedPrior

STACK_GROUP = "conceptlab.benchmark_stacks"
PIPELINE_GROUP = "conceptlab.benchmark_pipelines"


@dataclass(frozen=True)
class DepthCut:
    """Layers kept when the depth is cut for a CPU (the widths, vocabulary and sequence lengths never are)."""

    text_layers: int
    prior_layers: int
    vision_layers: int = 1


class BenchStack(Protocol):
    """A `conceptlab.benchmark_stacks` entry: a prior stack the step benchmark builds twice (baseline and ours)."""

    def depth(self, cut: DepthCut | None) -> dict[str, int | str]:
        """The layers it is built with and a `cut` line saying so (`cut` None: full depth)."""
        ...

    def build(self, device: torch.device, dtype: torch.dtype, cut: DepthCut | None) -> PriorStack: ...

    def constraint_encoder(self, stack: PriorStack, cut: DepthCut | None) -> ConstraintEncoder | None:
        """The official code's constraint encoder for this stack (None: the prior's own CLIP)."""
        ...

    def world(self, device: torch.device, dtype: torch.dtype, cut: DepthCut | None) -> tuple[LoadedPrior, DecoderStack]:
        """The prior, loaded, and a decoder for it: what `bench --gpu-check` runs a short adaptive `create` on."""
        ...


class BenchPipeline(Protocol):
    """A `conceptlab.benchmark_pipelines` entry: a random real-width pipeline and oracle an imagine row times."""

    oracle: str
    """How the row names its oracle."""

    def build(self, device: torch.device, dtype: torch.dtype, full: bool) -> tuple[ImagineRequest, Loaded, Oracle]:
        """The request, the loaded route and the oracle, built on `device` (`full`: real depth, steps and size)."""
        ...


def stack_names() -> list[str]:
    return names(STACK_GROUP)


def bench_stack(name: str) -> BenchStack:
    return find(STACK_GROUP, name)


def pipeline_names() -> list[str]:
    return names(PIPELINE_GROUP)


def bench_pipeline(name: str) -> BenchPipeline:
    return find(PIPELINE_GROUP, name)
