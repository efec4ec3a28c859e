"""Random-weight SD3.5 Large, SDXL and ViLT of the real widths, for the `imagine` row of the benchmark
(`conceptlab.benchmark_pipelines`: `bench --imagine sd3.5-real-width`, `sdxl-real-width`).

Built in memory, nothing downloaded or written. Widths are the hub configs' (`stabilityai/stable-diffusion-3.5-large`:
transformer 38 heads of 64 = 2432 wide over 16-channel latents, patch 2, joint attention 4096, pooled 2048, QK
RMS-norm; CLIP ViT-L/14 and OpenCLIP bigG/14 text towers; T5-XXL encoder 4096 wide, 64 heads, gated-GELU 10240; the
16-channel VAE (128, 256, 512, 512); `madebyollin/taesd3`'s `AutoencoderTiny` with 16 latent channels;
`dandelin/vilt-b32-finetuned-vqa`: ViT-B/32 at 384 px, 12 layers, 3,129 answers; SDXL: see `build_sdxl`). With
`cut` the denoiser and the text encoders are one layer deep (SD3.5: real 38, 12, 32, 24) for a CPU; the
autoencoders and ViLT keep their depth.
Timing depends on the shapes, not on the values, so the ratio imagine / plain is measured on what the real models
compute, but each model is shallower: the denoiser's share of a step is smaller than on the real model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import (
    BertTokenizerFast,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    T5Config,
    T5EncoderModel,
    ViltConfig,
    ViltForQuestionAnswering,
    ViltImageProcessor,
    ViltProcessor,
)

from conceptlab.plugins.pipelines import SD35, SDXL
from conceptlab.plugins.tiny.sd3 import build_t5_tokenizer
from conceptlab.plugins.tiny.world import build_tokenizer

CLIP_VOCAB_SIZE = 49408
T5_VOCAB_SIZE = 32128
VQA_ANSWERS = 3129
REAL_DEPTHS = (38, 12, 32, 24)
"""Layers of SD3.5 Large's transformer, CLIP-L, CLIP-G and T5-XXL encoders."""


def t5_xxl_config(layers: int) -> T5Config:
    """T5-XXL's encoder widths (SD3.5's and FLUX.1's third text encoder), `layers` deep."""
    return T5Config(
        vocab_size=T5_VOCAB_SIZE,
        d_model=4096,
        d_kv=64,
        d_ff=10240,
        num_layers=layers,
        num_heads=64,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )


def _clip(hidden: int, heads: int, layers: int, projection: bool = True) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_attention_heads=heads,
        num_hidden_layers=layers,
        projection_dim=hidden,
        max_position_embeddings=77,
        hidden_act="gelu",
    )
    return CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)


def _vae(latent_channels: int, scaling_factor: float, **extra: Any) -> AutoencoderKL:
    """The Stable Diffusion VAE's real widths (128/256/512/512, two layers a block); SD3's has 16 latent channels."""
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=latent_channels,
        scaling_factor=scaling_factor,
        **extra,
    )


def build_sd35_large(cut: bool = True) -> tuple[StableDiffusion3Pipeline, AutoencoderTiny]:
    """The pipeline (stock `StableDiffusion3Pipeline`) and its preview autoencoder, random; `cut`: one layer deep
    transformer and text encoders."""
    layers, clip_l, clip_g, t5_layers = (1, 1, 1, 1) if cut else REAL_DEPTHS
    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=128,
        patch_size=2,
        in_channels=16,
        num_layers=layers,
        attention_head_dim=64,
        num_attention_heads=38,
        joint_attention_dim=4096,
        caption_projection_dim=2432,
        pooled_projection_dim=2048,
        out_channels=16,
        pos_embed_max_size=192,
        qk_norm="rms_norm",
    )
    t5 = t5_xxl_config(t5_layers)
    vae = _vae(16, 1.5305, shift_factor=0.0609, use_quant_conv=False, use_post_quant_conv=False)
    pipeline = StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        text_encoder=_clip(768, 12, clip_l),
        text_encoder_2=_clip(1280, 20, clip_g),
        text_encoder_3=T5EncoderModel(t5),
        tokenizer=build_tokenizer(),
        tokenizer_2=build_tokenizer(),
        tokenizer_3=build_t5_tokenizer(),
        transformer=transformer,
        vae=vae,
    )
    return pipeline, _frozen(pipeline, AutoencoderTiny(latent_channels=16, scaling_factor=1.5305, shift_factor=0.0609))


def build_sdxl(cut: bool = True) -> tuple[StableDiffusionXLPipeline, AutoencoderTiny]:
    """SDXL base (`stabilityai/stable-diffusion-xl-base-1.0`): UNet 320/640/1280 channels, heads of 64, cross
    attention 2048, `text_time` embedding; `cut`: one resnet and one transformer layer per level (real: 2 and
    1/2/10) and one-layer text encoders (real: 12 and 32). The 4-channel VAE and `madebyollin/taesdxl` are whole."""
    resnets, transformers, clip_l, clip_g = (1, (1, 1, 1), 1, 1) if cut else (2, (1, 2, 10), 12, 32)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=128,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(320, 640, 1280),
        layers_per_block=resnets,
        transformer_layers_per_block=transformers,
        attention_head_dim=(5, 10, 20),
        cross_attention_dim=2048,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
    )
    vae = _vae(4, 0.13025)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading"
    )
    pipeline = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=_clip(768, 12, clip_l, projection=False),
        text_encoder_2=_clip(1280, 20, clip_g),
        tokenizer=build_tokenizer(),
        tokenizer_2=build_tokenizer(),
        unet=unet,
        scheduler=scheduler,
    )
    return pipeline, _frozen(pipeline, AutoencoderTiny(latent_channels=4))


def _frozen(pipeline: Any, preview: AutoencoderTiny) -> AutoencoderTiny:
    for module in (*pipeline.components.values(), preview):
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False).eval()
    return preview


def build_vilt(tokenizer_folder: Any) -> tuple[ViltProcessor, ViltForQuestionAnswering]:
    """ViLT-B/32 for VQA with its processor (384 px shortest edge), random; the tiny ViLT's word vocabulary."""
    torch.manual_seed(1)
    answers = [f"thing{index}" for index in range(VQA_ANSWERS)]
    config = ViltConfig(num_labels=VQA_ANSWERS, id2label=dict(enumerate(answers)))
    model = ViltForQuestionAnswering(config).eval()
    processor = ViltProcessor(ViltImageProcessor(), BertTokenizerFast.from_pretrained(tokenizer_folder))
    return processor, model


REAL_WIDTH_IMAGINE = {"sd3.5-real-width": build_sd35_large, "sdxl-real-width": build_sdxl}
"""`bench --imagine` names of random real-width models; `--full` keeps their depth (for a GPU)."""
REAL_MODELS = {"sd3.5-real-width": SD35, "sdxl-real-width": SDXL}
"""The published model each row stands for: its family, steps (with `--full`) and guidance."""
CPU_SETTINGS = (8, 256)
"""Steps and size of a cut-depth run on a CPU (4 asks); full depth runs the paper's 28 steps at 1024 px."""


def real_width_imagine(name: str, device: torch.device, dtype: torch.dtype, full: bool) -> tuple[Any, Any, Any]:
    """`(request, loaded, oracle)` for `time_loaded`: the pipeline, its preview autoencoder and a ViLT oracle of the
    real widths, random, on `device`."""
    from conceptlab.engine.imagine.request import ImagineRequest
    from conceptlab.engine.imagine.run import Loaded
    from conceptlab.engine.imagine.steering import POOLED_NAMES, Settings, StableDiffusionRoute

    pipeline, preview = REAL_WIDTH_IMAGINE[name](cut=not full)
    if (device.type, dtype) != ("cpu", torch.float32):  # built there, in that dtype
        pipeline.to(device, dtype)
        preview.to(device, dtype)
    pipeline.set_progress_bar_config(disable=True)
    real = REAL_MODELS[name]
    steps, size = (real.steps, real.size) if full else CPU_SETTINGS
    route = StableDiffusionRoute(pipeline, POOLED_NAMES[real.family], preview)
    host, oracle = real_width_vilt(device)
    request = ImagineRequest(category="pet", n=1, model=name, device=str(device), steps=steps, size=size)
    return request, Loaded(route, Settings(steps, real.guidance, size), host, None), oracle


def real_width_vilt(device: torch.device) -> tuple[Any, Any]:
    """`(oracle host, oracle)`: the `vilt` oracle holding a random ViLT-B/32 of the real widths, on `device`."""
    from conceptlab.engine.adaptive.oracle import OracleOptions
    from conceptlab.engine.imagine.run import DeviceHost
    from conceptlab.plugins.oracles.vilt import ViltOracle
    from conceptlab.plugins.tiny.vilt import tiny_vilt_folder

    host = DeviceHost(device)
    oracle = ViltOracle(host, OracleOptions())
    oracle._processor, model = build_vilt(tiny_vilt_folder())
    oracle._model = model.to(device)
    return host, oracle


@dataclass(frozen=True)
class RealWidthPipeline:
    """A `conceptlab.benchmark_pipelines` entry: `real_width_imagine` of `name`, with a random ViLT of real width."""

    name: str
    oracle: str = "vilt (random, real width)"
    gpu_check_budget_s: float | None = None
    """Seconds on one H100 for `bench --gpu-check`'s rows of this pipeline (docs/performance.md, gpu-check budget)."""

    def build(self, device: torch.device, dtype: torch.dtype, full: bool) -> tuple[Any, Any, Any]:
        return real_width_imagine(self.name, device, dtype, full)


SD35_REAL_WIDTH = RealWidthPipeline("sd3.5-real-width", gpu_check_budget_s=75.0)
SDXL_REAL_WIDTH = RealWidthPipeline("sdxl-real-width", gpu_check_budget_s=20.0)
