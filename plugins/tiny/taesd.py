"""Tiny `AutoencoderTiny` preview decoders for the tiny SDXL and SD3 pipelines, built from config (random weights).

Real models use Ollin Boer Bohan's trained ones (`madebyollin/taesdxl`, `madebyollin/taesd3`); these only match the
tiny pipelines' latent shapes (4 channels; SDXL's VAE halves the size once, SD3's tiny VAE not at all), so tests run
the preview path offline.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderTiny

from conceptlab.engine.io.cache import cached_build

LEVELS = {"sdxl": 2, "sd3": 1}
"""Decoder levels: each after the first doubles the size, as the tiny pipelines' VAEs do."""


def _builder(family: str):
    def save(folder: Path) -> None:
        levels = LEVELS[family]
        torch.manual_seed(0)
        autoencoder = AutoencoderTiny(
            encoder_block_out_channels=(16,) * levels,
            decoder_block_out_channels=(16,) * levels,
            num_encoder_blocks=(1,) * levels,
            num_decoder_blocks=(1,) * levels,
            latent_channels=4,
        )
        autoencoder.save_pretrained(folder, safe_serialization=True)

    return save


def tiny_taesd_folder(family: str) -> Path:
    """The cached tiny preview autoencoder for `family` ("sdxl" or "sd3")."""
    return cached_build(f"tiny-taesd-{family}", (Path(__file__),), _builder(family))
