"""A tiny Stable Diffusion XL pipeline from diffusers' own fast-test component configs, built once and cached.

The configs are those of diffusers' `StableDiffusionXLPipelineFastTests.get_dummy_components`
(tests/pipelines/stable_diffusion_xl/test_stable_diffusion_xl.py): a 2-level UNet with SDXL's text-time
conditioning, a 2-level VAE, two 32-wide CLIP text encoders (the second with a projection). Only the tokenizers
differ: the hub's `hf-internal-testing/tiny-random-clip` cannot be fetched here, so both use the tiny world's
locally built CLIP tokenizer (and the text encoders its vocabulary size). Every weight is random: the pipeline
runs exactly the code path of a real SDXL checkpoint, at 64 px in a fraction of a second per step.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from conceptlab.engine.io.cache import cached_build
from conceptlab.plugins.tiny.fast_test_configs import fast_test_clip_text_config
from conceptlab.plugins.tiny.world import build_tokenizer


def build_tiny_sdxl() -> StableDiffusionXLPipeline:
    """The fast-test components, seeded as diffusers seeds them."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(2, 4),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,  # 6 * 8 + 32
        cross_attention_dim=64,
        norm_num_groups=1,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        steps_offset=1,
        beta_schedule="scaled_linear",
        timestep_spacing="leading",
    )
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        sample_size=128,
    )
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    text_config = fast_test_clip_text_config(len(tokenizer), hidden_act="gelu")
    return StableDiffusionXLPipeline(
        vae=vae.eval(),
        text_encoder=CLIPTextModel(text_config).eval(),
        tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(text_config).eval(),
        tokenizer_2=build_tokenizer(),
        unet=unet.eval(),
        scheduler=scheduler,
        image_encoder=None,
        feature_extractor=None,
    )


def _save(folder: Path) -> None:
    build_tiny_sdxl().save_pretrained(folder, safe_serialization=True)


def tiny_sdxl_folder() -> Path:
    """The cached tiny SDXL pipeline folder (`StableDiffusionXLPipeline.from_pretrained` loads it), built on first
    use in a few seconds; its cache key changes whenever this recipe or the tiny tokenizer's does."""
    from conceptlab.plugins.tiny import fast_test_configs, world

    return cached_build("tiny-sdxl", (Path(__file__), Path(fast_test_configs.__file__), Path(world.__file__)), _save)
