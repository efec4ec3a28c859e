"""The tiny SDXL pipeline loads through the stock `from_pretrained` path and renders deterministically."""

from __future__ import annotations

import torch
from diffusers import StableDiffusionXLPipeline

from conceptlab.plugins.tiny.sdxl import tiny_sdxl_folder


def test_tiny_sdxl_loads_and_renders_the_same_for_a_seed():
    folder = tiny_sdxl_folder()
    assert tiny_sdxl_folder() == folder  # cached: the second call builds nothing
    pipe = StableDiffusionXLPipeline.from_pretrained(folder)

    def render(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        out = pipe("a photo of a cat", num_inference_steps=2, generator=generator, output_type="pt")
        return out.images

    first = render(0)
    assert first.shape == (1, 3, 64, 64)
    assert torch.equal(first, render(0))
    assert not torch.equal(first, render(1))
