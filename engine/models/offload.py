"""Keep only the models in use on the accelerator: the prior, the decoder and a VQA model rarely all fit at once.

With offloading on, `use("decoder")` first moves every other group to the CPU, then the decoder to the device; each
phase of work (all prior sampling, then all decoding) moves each model once. With it off, everything stays put.
"auto" (`offload=None`) offloads on a CUDA device when what is not on it yet, the decoder and an oracle that loads on
its first question, would not fit in its free memory with `HEADROOM_BYTES` to spare.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from conceptlab.engine.models.backend import DecoderStack
    from conceptlab.engine.models.loading import LoadedPrior

IDLE_DEVICE = torch.device("cpu")
ModuleSource = Iterable[nn.Module] | Callable[[], Iterable[nn.Module]]
HEADROOM_BYTES = 2 * 1024**3
"""Room left for activations (a 512 px decoder step in float16 needs about 1 GiB) when deciding if models fit."""


def module_bytes(modules: Iterable[nn.Module]) -> int:
    return sum(t.numel() * t.element_size() for m in modules for t in [*m.parameters(), *m.buffers()])


def _move(module: nn.Module, device: torch.device) -> None:
    module.to(device)


class Residency:
    """Named groups of modules, of which only the one in use is on `device` when `offload` is on."""

    def __init__(
        self, device: torch.device, offload: bool, move: Callable[[nn.Module, torch.device], None] = _move
    ) -> None:
        self.device = device
        self.offload = offload
        self._move = move
        self._groups: dict[str, list[nn.Module]] = {}
        self._where: dict[str, torch.device] = {}

    def add(self, name: str, modules: ModuleSource, where: torch.device) -> None:
        """Register a group and the device it is on now; `modules` may be a function that lists them when they
        move, for a model that loads later (an oracle loads on its first question, on the device in use)."""
        self._groups[name] = modules if callable(modules) else list(modules)
        self._where[name] = where

    def where(self, name: str) -> torch.device:
        return self._where[name]

    def use(self, name: str) -> None:
        """Put group `name` on the device; with offloading, park every other group on the CPU first."""
        if self.offload:
            for other in self._groups:
                if other != name:
                    self._place(other, IDLE_DEVICE)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        self._place(name, self.device)

    def _place(self, name: str, device: torch.device) -> None:
        if self._where[name] != device:
            group = self._groups[name]
            for module in group() if callable(group) else group:
                self._move(module, device)
            self._where[name] = device


def free_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA device; None elsewhere (the CPU, or an Apple GPU sharing the system's memory)."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return free


def offload_needed(waiting_bytes: int, free_bytes: int | None) -> bool:
    """`auto`: offload when the models not yet on the device (`waiting_bytes`), with room for activations, exceed
    its free memory; never where free memory is not known (`None`), nor when nothing is waiting to come in."""
    if free_bytes is None or waiting_bytes == 0:
        return False
    return waiting_bytes + HEADROOM_BYTES > free_bytes


def prior_and_decoder_residency(
    loaded: LoadedPrior, decoder: DecoderStack, offload: bool | None, oracle_bytes: int = 0
) -> Residency:
    """Groups `prior` and `decoder`; `offload` None: only when what is still to come onto the device (the decoder,
    if parked on the CPU, and `oracle_bytes` of an oracle that loads when first asked) would not fit."""
    stack = loaded.stack
    prior_modules = [stack.text_encoder, stack.prior, stack.image_encoder]
    decoder_modules = [m for m in decoder.pipeline.components.values() if hasattr(m, "parameters")]
    decoder_place = next(decoder_modules[0].parameters()).device
    if offload is None:
        decoder_bytes = module_bytes(decoder_modules) if decoder_place != decoder.device else 0
        offload = offload_needed(decoder_bytes + oracle_bytes, free_memory(decoder.device))
    residency = Residency(decoder.device, offload)
    residency.add("prior", prior_modules, stack.device)
    residency.add("decoder", decoder_modules, decoder_place)
    return residency
