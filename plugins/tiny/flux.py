"""A tiny FLUX.1 pipeline from diffusers' own fast-test component configs, built once and cached, and its tiny
preview autoencoder.

The configs are those of diffusers' `FluxPipelineTesterConfig.get_dummy_components`
(tests/pipelines/flux/test_pipeline_flux.py): a `FluxTransformer2DModel` with one double and one single block
(2 heads of 16, joint attention 32, pooled projection 32, rope axes 4/4/8), a 32-wide CLIP text encoder (its fast-test
config, `fast_test_configs.py`), a one-level VAE with one latent channel and FLUX's shift and scale, and the
flow-matching Euler scheduler. Differences, because the hub cannot be reached here: the CLIP tokenizer is the tiny
world's, and the T5 encoder and tokenizer are tiny SD3's (`sd3.py`: `hf-internal-testing/tiny-random-t5`'s sizes, a
tokenizer trained here). The transformer has no guidance embedding, as the fast test's (FLUX.1-schnell has none
either); every weight is random; images are 32 px. The preview autoencoder (`AutoencoderTiny`, one latent channel,
one level) stands in for `madebyollin/taef1`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
)
from transformers import CLIPTextModel

from conceptlab.engine.io.cache import cached_build
from conceptlab.plugins.tiny import fast_test_configs, sd3, world
from conceptlab.plugins.tiny.fast_test_configs import fast_test_clip_text_config
from conceptlab.plugins.tiny.sd3 import build_t5, build_t5_tokenizer
from conceptlab.plugins.tiny.world import build_tokenizer

MAX_SEQUENCE_LENGTH = 48
"""T5 tokens per prompt: the fast test's `max_sequence_length`."""
LATENT_CHANNELS = 1


def build_tiny_flux() -> FluxPipeline:
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8],
    )
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(fast_test_clip_text_config(len(tokenizer), hidden_act="gelu"))
    tokenizer_2 = build_t5_tokenizer()
    torch.manual_seed(0)
    vae = AutoencoderKL(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(4,),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder.eval(),
        text_encoder_2=build_t5(len(tokenizer_2)),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        transformer=transformer.eval(),
        vae=vae.eval(),
    )


def _save_pipeline(folder: Path) -> None:
    build_tiny_flux().save_pretrained(folder, safe_serialization=True)


def _save_preview(folder: Path) -> None:
    torch.manual_seed(0)
    autoencoder = AutoencoderTiny(
        encoder_block_out_channels=(16,),
        decoder_block_out_channels=(16,),
        num_encoder_blocks=(1,),
        num_decoder_blocks=(1,),
        latent_channels=LATENT_CHANNELS,
    )
    autoencoder.save_pretrained(folder, safe_serialization=True)


RECIPE = (Path(__file__), Path(fast_test_configs.__file__), Path(sd3.__file__), Path(world.__file__))


def tiny_flux_folder() -> Path:
    """The cached tiny FLUX pipeline folder, built on first use in a second or two."""
    return cached_build("tiny-flux", RECIPE, _save_pipeline)


def tiny_taef1_folder() -> Path:
    """The cached tiny preview autoencoder for tiny FLUX (one latent channel)."""
    return cached_build("tiny-taef1", (Path(__file__),), _save_preview)
