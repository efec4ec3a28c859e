"""The Kandinsky 2.2 decoder of the real widths with random weights, for the adaptive `create` row of
`bench --gpu-check`: the prior stack of `prior_stacks` and this decoder make a whole world for a short `create`.

The UNet is the hub's `kandinsky-community/kandinsky-2-2-decoder` shape: the 2.1 UNet of diffusers'
`scripts/convert_kandinsky_to_diffusers.py` (`UNET_CONFIG`: 384/768/1152/1536 channels, three layers a block,
simple cross attention, heads of 64, learned variance) with the image embedding (1280 wide, ViT-bigG/14) entering
through `image_proj` instead of M-CLIP's `text_image_proj`; MoVQ is that script's `MOVQ_CONFIG`. Built as the real
one it has 1.2 B parameters (the Kandinsky-2 README: "Latent Diffusion U-Net - 1.22B", MoVQ 67 M). With `cut` the
UNet keeps one layer a block (the widths never change) for a CPU.
"""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler, KandinskyV22Pipeline, UNet2DConditionModel, VQModel

from conceptlab.engine.models.backend import DecoderStack

UNET_LAYERS_PER_BLOCK = 3


def build_unet(image_embedding_dim: int, layers_per_block: int = UNET_LAYERS_PER_BLOCK) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        act_fn="silu",
        addition_embed_type="image",
        addition_embed_type_num_heads=64,
        attention_head_dim=64,
        block_out_channels=(384, 768, 1152, 1536),
        cross_attention_dim=768,
        down_block_types=(
            "ResnetDownsampleBlock2D",
            "SimpleCrossAttnDownBlock2D",
            "SimpleCrossAttnDownBlock2D",
            "SimpleCrossAttnDownBlock2D",
        ),
        encoder_hid_dim=image_embedding_dim,
        encoder_hid_dim_type="image_proj",
        in_channels=4,
        layers_per_block=layers_per_block,
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        out_channels=8,
        resnet_time_scale_shift="scale_shift",
        sample_size=64,
        up_block_types=(
            "SimpleCrossAttnUpBlock2D",
            "SimpleCrossAttnUpBlock2D",
            "SimpleCrossAttnUpBlock2D",
            "ResnetUpsampleBlock2D",
        ),
    )


def build_movq() -> VQModel:
    return VQModel(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
        up_block_types=("AttnUpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"),
        num_vq_embeddings=16384,
        block_out_channels=(128, 256, 256, 512),
        vq_embed_dim=4,
        layers_per_block=2,
        norm_type="spatial",
    )


def build_decoder(
    image_embedding_dim: int, device: torch.device, dtype: torch.dtype, cut: bool, seed: int = 2
) -> DecoderStack:
    """The decoder pipeline (stock `KandinskyV22Pipeline`), random, built on `device` in `dtype`."""
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        unet = build_unet(image_embedding_dim, 1 if cut else UNET_LAYERS_PER_BLOCK)
        movq = build_movq()
    scheduler = DDPMScheduler(  # the settings of the hub decoder's scheduler
        num_train_timesteps=1000,
        beta_schedule="linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        steps_offset=1,
        prediction_type="epsilon",
        thresholding=False,
    )
    pipeline = KandinskyV22Pipeline(unet=unet, scheduler=scheduler, movq=movq)
    pipeline.to(device=device, dtype=dtype)
    for module in (unet, movq):
        module.requires_grad_(False).eval()
    pipeline.set_progress_bar_config(disable=True)
    return DecoderStack(pipeline=pipeline, device=device, dtype=dtype, source="random, real widths")
