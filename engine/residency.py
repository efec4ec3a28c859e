"""Keep only the models in use on the accelerator: the prior, the decoder and a VQA model rarely all fit at once.

With offloading on, `use("decoder")` first moves every other group to the CPU, then the decoder to the device; each
phase of work (all prior sampling, then all decoding) moves each model once. With it off, everything stays put.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

IDLE_DEVICE = torch.device("cpu")
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

    def add(self, name: str, modules: Iterable[nn.Module], where: torch.device) -> None:
        """Register a group and the device it is on now."""
        self._groups[name] = list(modules)
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
            for module in self._groups[name]:
                self._move(module, device)
            self._where[name] = device


def offload_needed(device: torch.device, waiting: Iterable[nn.Module]) -> bool:
    """`auto`: offload on a CUDA device when the modules not yet on it would not fit in its free memory."""
    if device.type != "cuda":
        return False
    free, _total = torch.cuda.mem_get_info(device)
    return module_bytes(waiting) + HEADROOM_BYTES > free
