"""A random FLUX.1-dev of the real widths for the `imagine` row of the benchmark (`conceptlab.benchmark_pipelines`:
`bench --imagine flux.1-dev-real-width`).

Built in memory, nothing downloaded or written. Widths are `black-forest-labs/FLUX.1-dev`'s (transformer: 19 double
and 38 single blocks of 24 heads of 128 = 3072 wide over 16-channel latents packed 2 × 2 into 64, joint attention
4096, pooled 768, guidance embedding, rope axes 16/56/56; CLIP ViT-L/14's text tower; the T5-XXL encoder; the
16-channel VAE with FLUX's scale and shift; `madebyollin/taef1`'s `AutoencoderTiny` with 16 latent channels) and
the flow-matching scheduler with dynamic shifting. With `cut` one double and one single block and one-layer text
encoders (real: 19, 38, 12, 24), for a CPU; the autoencoders and ViLT keep their depth. Negatives act through true
CFG, so plain and imagine both run the transformer twice a step (see docs/imagine.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers import AutoencoderTiny, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from transformers import T5EncoderModel

from conceptlab.plugins.benchmark.sd_pipelines import _clip, _frozen, _vae, real_width_vilt, t5_xxl_config
from conceptlab.plugins.pipelines import FLUX_DEV
from conceptlab.plugins.tiny.sd3 import build_t5_tokenizer
from conceptlab.plugins.tiny.world import build_tokenizer

REAL_DEPTHS = (19, 38, 12, 24)
"""FLUX.1-dev's double and single blocks, CLIP-L and T5-XXL encoder layers."""
CPU_SETTINGS = (8, 256)
"""Steps and size of a cut-depth run on a CPU (4 asks), as the SD rows; full depth runs 28 steps at 1024 px."""


def build_flux_dev(cut: bool = True) -> tuple[FluxPipeline, AutoencoderTiny]:
    """The pipeline (stock `FluxPipeline`) and its preview autoencoder, random; `cut`: one block of each kind and
    one-layer text encoders."""
    double, single, clip_layers, t5_layers = (1, 1, 1, 1) if cut else REAL_DEPTHS
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=double,
        num_single_layers=single,
        attention_head_dim=128,
        num_attention_heads=24,
        joint_attention_dim=4096,
        pooled_projection_dim=768,
        guidance_embeds=True,
        axes_dims_rope=(16, 56, 56),
    )
    t5 = t5_xxl_config(t5_layers)
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256
    )
    pipeline = FluxPipeline(
        scheduler=scheduler,
        text_encoder=_clip(768, 12, clip_layers, projection=False),
        text_encoder_2=T5EncoderModel(t5),
        tokenizer=build_tokenizer(),
        tokenizer_2=build_t5_tokenizer(),
        transformer=transformer,
        vae=_vae(16, 0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False),
    )
    return pipeline, _frozen(pipeline, AutoencoderTiny(latent_channels=16))


def real_width_flux(device: torch.device, dtype: torch.dtype, full: bool) -> tuple[Any, Any, Any]:
    """`(request, loaded, oracle)` for `time_loaded`: the pipeline, taef1 and a ViLT oracle of the real widths."""
    from conceptlab.engine.imagine.request import ImagineRequest
    from conceptlab.engine.imagine.run import Loaded
    from conceptlab.engine.imagine.steering import FluxRoute, Settings

    pipeline, preview = build_flux_dev(cut=not full)
    if (device.type, dtype) != ("cpu", torch.float32):
        pipeline.to(device, dtype)
        preview.to(device, dtype)
    pipeline.set_progress_bar_config(disable=True)
    steps, size = (FLUX_DEV.steps, FLUX_DEV.size) if full else CPU_SETTINGS
    route = FluxRoute(pipeline, FLUX_DEV.distilled_guidance, FLUX_DEV.max_sequence_length, preview)
    host, oracle = real_width_vilt(device)
    request = ImagineRequest(
        category="pet", n=1, model="flux.1-dev-real-width", device=str(device), steps=steps, size=size
    )
    return request, Loaded(route, Settings(steps, FLUX_DEV.guidance, size), host, None), oracle


@dataclass(frozen=True)
class FluxRealWidth:
    """The `conceptlab.benchmark_pipelines` entry `flux.1-dev-real-width`."""

    oracle: str = "vilt (random, real width)"
    gpu_check_budget_s: float = 110.0
    """Seconds on one H100 for `bench --gpu-check`'s imagine rows (docs/performance.md, gpu-check budget)."""

    def build(self, device: torch.device, dtype: torch.dtype, full: bool) -> tuple[Any, Any, Any]:
        return real_width_flux(device, dtype, full)


FLUX_DEV_REAL_WIDTH = FluxRealWidth()
