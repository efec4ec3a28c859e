"""Build the tiny decoder: a Kandinsky 2.2 decoder (image-conditioned UNet + MoVQ) small enough to render in tests.

Its weights are random (drawn from a fixed seed): the tiny decoder does not make pictures of anything, but it is the
real architecture, runs through diffusers' own `KandinskyV22Pipeline`, and its images depend on the image embedding
it is given, which is what the sampling code and its tests need. The layer sizes follow diffusers' own Kandinsky 2.2
pipeline tests; the scheduler has the real decoder's settings.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDPMScheduler, KandinskyV22Pipeline, UNet2DConditionModel, VQModel

from conceptlab.plugins.tiny_world import EMBED_DIM

SEED = 2024
LATENT_CHANNELS = 4
OUTPUT_GAIN = 0.05
"""Scales MoVQ's last layer: at random initialisation nearly every pixel is clipped to 0 or 255 and images of
different embeddings could differ in few pixels; scaled down, every pixel carries the embedding's influence."""


def _unet() -> UNet2DConditionModel:
    """The 2.2 UNet: the image embedding enters as extra time embedding and as cross-attention tokens."""
    return UNet2DConditionModel(
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS * 2,  # learned variance, as the real decoder
        addition_embed_type="image",
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        block_out_channels=(16, 32),
        layers_per_block=1,
        encoder_hid_dim=EMBED_DIM,
        encoder_hid_dim_type="image_proj",
        cross_attention_dim=32,
        attention_head_dim=4,
        resnet_time_scale_shift="scale_shift",
        class_embed_type=None,
        norm_num_groups=8,
    )


def _movq() -> VQModel:
    return VQModel(
        block_out_channels=(32, 64),  # MoVQ's spatial norm has 32 groups
        down_block_types=("DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
        in_channels=3,
        latent_channels=LATENT_CHANNELS,
        layers_per_block=1,
        norm_num_groups=8,
        norm_type="spatial",
        num_vq_embeddings=12,
        out_channels=3,
        up_block_types=("AttnUpDecoderBlock2D", "UpDecoderBlock2D"),
        vq_embed_dim=LATENT_CHANNELS,
    )


def _scheduler() -> DDPMScheduler:
    """The settings of `kandinsky-community/kandinsky-2-2-decoder`'s scheduler."""
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        steps_offset=1,
        prediction_type="epsilon",
        thresholding=False,
    )


def build_tiny_decoder_pipeline() -> KandinskyV22Pipeline:
    """Deterministic: the same weights on every machine for a given torch version."""
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        unet = _unet()
        movq = _movq()
    with torch.no_grad():
        movq.decoder.conv_out.weight.mul_(OUTPUT_GAIN)
    return KandinskyV22Pipeline(unet=unet, scheduler=_scheduler(), movq=movq)


def save_tiny_decoder(folder: Path) -> None:
    build_tiny_decoder_pipeline().save_pretrained(folder)
