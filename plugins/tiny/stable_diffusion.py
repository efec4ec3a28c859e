"""A tiny Stable Diffusion pipeline built from configs (as diffusers' own tests do), cached for the sd-neg tests.

Its UNet and VAE are random, its text encoder is the tiny world's trained one: the pipeline runs exactly the
code path of a real checkpoint, in a fraction of a second per image.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextModel

from conceptlab.engine.io.cache import cached_build
from conceptlab.plugins.tiny.backend import tiny_world_folder, tiny_world_recipe
from conceptlab.plugins.tiny.world import EMBED_DIM, build_tokenizer

SEED = 1234


def build_tiny_stable_diffusion(world: Path) -> StableDiffusionPipeline:
    torch.manual_seed(SEED)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=EMBED_DIM,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=CLIPTextModel.from_pretrained(world / "text_encoder").eval(),
        tokenizer=build_tokenizer(),
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def tiny_stable_diffusion_folder() -> Path:
    """Built once per tiny world into the conceptlab cache."""
    world = tiny_world_folder()

    def build(folder: Path) -> None:
        build_tiny_stable_diffusion(world).save_pretrained(folder, safe_serialization=True)

    return cached_build("tiny-sd", (Path(__file__), *tiny_world_recipe()), build)
