"""A random Kandinsky 2.2 of the real widths for the `imagine` row of the benchmark (`conceptlab.benchmark_pipelines`:
`bench --imagine kandinsky-2.2-real-width`).

Built in memory, nothing downloaded or written. The prior stack is `prior_stacks.py`'s 2.2 shape (CLIP ViT-bigG/14
text tower, the 2048-wide `PriorTransformer` over 1280-d embeddings, the bigG image encoder). The decoder is diffusers'
own `KandinskyV22Pipeline` with the widths of `kandinsky-community/kandinsky-2-2-decoder` (Kandinsky 2.x's UNet:
model channels 384 times 1, 2, 3, 4, three resnets a level, heads of 64, image-embedding conditioning from 1280-d into
768-d cross attention, learned variance; 1,253 M parameters as built, the model card's "1.22B"; MoVQ 128/256/256/512
with spatial norm and 16,384 codes, 67.8 M, the card's "67M"). With `cut` the text encoder, prior and image encoder are
one layer deep and the UNet one resnet a level, for a CPU; the widths, MoVQ and ViLT keep their size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DDPMScheduler, KandinskyV22Pipeline, UNet2DConditionModel, VQModel

from conceptlab.plugins.benchmark.prior_stacks import REAL_WIDTH_STACKS, build_real_width_stack

CPU_SETTINGS = (8, 256)
"""Steps and size of a cut-depth run on a CPU (4 asks), as the SD rows; full depth runs 50 steps at 512 px."""
FULL_SETTINGS = (50, 512)
"""`RenderSettings`' defaults, which imagine runs Kandinsky 2.2 with."""


def build_decoder(cut: bool = True) -> KandinskyV22Pipeline:
    """The 2.2 decoder pipeline, random; `cut`: one resnet a level (real: three)."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        in_channels=4,
        out_channels=8,
        block_out_channels=(384, 768, 1152, 1536),
        layers_per_block=1 if cut else 3,
        down_block_types=("ResnetDownsampleBlock2D",) + ("SimpleCrossAttnDownBlock2D",) * 3,
        up_block_types=("SimpleCrossAttnUpBlock2D",) * 3 + ("ResnetUpsampleBlock2D",),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        attention_head_dim=64,
        cross_attention_dim=768,
        encoder_hid_dim=1280,
        encoder_hid_dim_type="image_proj",
        addition_embed_type="image",
        addition_embed_type_num_heads=64,
        resnet_time_scale_shift="scale_shift",
        class_embed_type=None,
        sample_size=64,
    )
    movq = VQModel(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3 + ("AttnDownEncoderBlock2D",),
        up_block_types=("AttnUpDecoderBlock2D",) + ("UpDecoderBlock2D",) * 3,
        block_out_channels=(128, 256, 256, 512),
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=32,
        norm_type="spatial",
        num_vq_embeddings=16384,
        vq_embed_dim=4,
        sample_size=256,
    )
    scheduler = DDPMScheduler(
        beta_schedule="linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        steps_offset=1,
        variance_type="learned_range",
    )
    pipeline = KandinskyV22Pipeline(unet=unet, scheduler=scheduler, movq=movq)
    for module in (unet, movq):
        module.requires_grad_(False).eval()
    return pipeline


def real_width_kandinsky(device: torch.device, dtype: torch.dtype, full: bool) -> tuple[Any, Any, Any]:
    """`(request, loaded, oracle)` for `time_loaded`: the prior stack, decoder and a ViLT oracle of the real widths."""
    from conceptlab.engine.imagine.request import ImagineRequest
    from conceptlab.engine.imagine.run import Loaded
    from conceptlab.engine.imagine.steering import KandinskyRoute, Settings
    from conceptlab.engine.models.backend import DecoderStack
    from conceptlab.engine.models.plugins import load_backend
    from conceptlab.engine.rendering.render import render_settings
    from conceptlab.plugins.benchmark.sd_pipelines import real_width_vilt

    depth = {} if full else {"text_layers": 1, "prior_layers": 1, "vision_layers": 1}
    stack = build_real_width_stack(REAL_WIDTH_STACKS["kandinsky-2.2"], device, dtype, **depth)
    pipeline = build_decoder(cut=not full).to(device, dtype)
    pipeline.set_progress_bar_config(disable=True)
    steps, size = FULL_SETTINGS if full else CPU_SETTINGS
    render = render_settings(load_backend("kandinsky-2.2"), size=size, steps=steps)
    route = KandinskyRoute(_Prior(stack), DecoderStack(pipeline, device, dtype), render)
    host, oracle = real_width_vilt(device)
    request = ImagineRequest(
        category="pet", n=1, model="kandinsky-2.2-real-width", device=str(device), steps=steps, size=size
    )
    return request, Loaded(route, Settings(render.steps, render.guidance, render.size), host, None), oracle


@dataclass
class _Prior:
    """What `KandinskyRoute` reads of a loaded prior: its stack."""

    stack: Any


@dataclass(frozen=True)
class KandinskyRealWidth:
    """The `conceptlab.benchmark_pipelines` entry `kandinsky-2.2-real-width`."""

    oracle: str = "vilt (random, real width)"
    gpu_check_budget_s: float = 20.0
    """Seconds on one H100 for `bench --gpu-check`'s imagine rows (docs/performance.md, gpu-check budget)."""

    def build(self, device: torch.device, dtype: torch.dtype, full: bool) -> tuple[Any, Any, Any]:
        return real_width_kandinsky(device, dtype, full)


KANDINSKY_22_REAL_WIDTH = KandinskyRealWidth()
