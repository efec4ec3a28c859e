"""A tiny Stable Diffusion 3 pipeline from diffusers' own fast-test component configs, built once and cached.

The configs are those of diffusers' `StableDiffusion3PipelineFastTests.get_dummy_components`
(tests/pipelines/stable_diffusion_3/test_pipeline_stable_diffusion_3.py): a one-layer `SD3Transformer2DModel`, a
one-level VAE with SD3's shift and scale, two 32-wide CLIP text encoders and the flow-matching Euler scheduler.
Differences, because the hub cannot be reached here: both CLIP tokenizers are the tiny world's locally built one,
and the T5 encoder and tokenizer are left out (the pipeline then puts zeros in T5's place, as it allows). Every
weight is random; images are 32 px.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
from transformers import CLIPTextConfig, CLIPTextModelWithProjection

from conceptlab.plugins.tiny import cached_build
from conceptlab.plugins.tiny_world import build_tokenizer


def build_tiny_sd3() -> StableDiffusion3Pipeline:
    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=1,
        in_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=32,
        pooled_projection_dim=64,
        out_channels=4,
    )
    tokenizer = build_tokenizer()
    clip_config = CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=2,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=5,
        pad_token_id=1,
        vocab_size=len(tokenizer),
        hidden_act="gelu",
        projection_dim=32,
    )
    torch.manual_seed(0)
    text_encoder = CLIPTextModelWithProjection(clip_config)
    torch.manual_seed(0)
    text_encoder_2 = CLIPTextModelWithProjection(clip_config)
    torch.manual_seed(0)
    vae = AutoencoderKL(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(4,),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    return StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder.eval(),
        text_encoder_2=text_encoder_2.eval(),
        text_encoder_3=None,
        tokenizer=tokenizer,
        tokenizer_2=build_tokenizer(),
        tokenizer_3=None,
        transformer=transformer.eval(),
        vae=vae.eval(),
    )


def _save(folder: Path) -> None:
    build_tiny_sd3().save_pretrained(folder, safe_serialization=True)


def tiny_sd3_folder() -> Path:
    """The cached tiny SD3 pipeline folder, built on first use in a second or two."""
    from conceptlab.plugins import tiny_world

    return cached_build("tiny-sd3", (Path(__file__), Path(tiny_world.__file__)), _save)
