"""The tiny model of the `flux-ip-adapter` route: tiny FLUX (`flux.py`), an adapter file in XLabs-AI/flux-ip-adapter's
layout for it, and a tiny CLIP image encoder for the black-image negative, built locally and cached.

The adapter file has the keys XLabs' `ip_adapter.safetensors` has and diffusers' `FluxIPAdapterMixin.load_ip_adapter`
reads: `ip_adapter_proj_model.proj` / `.norm` (the image projection: one embedding to 4 tokens of the transformer's
joint attention width) and `double_blocks.<n>.processor.ip_adapter_double_stream_k_proj` / `_v_proj` (one pair per
double block), here for the tiny world's 64-d image space instead of CLIP ViT-L/14's 768. Every weight is random.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import FluxTransformer2DModel
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from conceptlab.engine.io.cache import cached_build
from conceptlab.plugins.tiny import TINY_IMAGE_SPACE, flux

ADAPTER_WEIGHTS = "ip_adapter.safetensors"
IMAGE_TOKENS = 4
"""XLabs' `ImageProjModel(4096, 768, 4)`: one image embedding becomes 4 tokens."""


def flux_ip_adapter_state_dict(transformer: FluxTransformer2DModel, image_width: int) -> dict[str, torch.Tensor]:
    """Random adapter weights for `transformer`, keyed as XLabs' safetensors file is."""
    cross, hidden = transformer.config.joint_attention_dim, transformer.inner_dim
    torch.manual_seed(0)
    projection = torch.nn.Linear(image_width, cross * IMAGE_TOKENS)
    weights = {
        "ip_adapter_proj_model.proj.weight": projection.weight,
        "ip_adapter_proj_model.proj.bias": projection.bias,
        "ip_adapter_proj_model.norm.weight": torch.ones(cross),
        "ip_adapter_proj_model.norm.bias": torch.zeros(cross),
    }
    for block in range(len(transformer.transformer_blocks)):
        for which in ("k", "v"):
            layer = torch.nn.Linear(cross, hidden)
            key = f"double_blocks.{block}.processor.ip_adapter_double_stream_{which}_proj"
            weights[f"{key}.weight"], weights[f"{key}.bias"] = layer.weight, layer.bias
    return {key: value.detach().contiguous() for key, value in weights.items()}


def _save_adapter(folder: Path) -> None:
    transformer = FluxTransformer2DModel.from_pretrained(flux.tiny_flux_folder() / "transformer")
    save_file(flux_ip_adapter_state_dict(transformer, TINY_IMAGE_SPACE.width), str(folder / ADAPTER_WEIGHTS))


def _save_encoder(folder: Path) -> None:
    config = CLIPVisionConfig(
        hidden_size=32,
        projection_dim=TINY_IMAGE_SPACE.width,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        intermediate_size=37,
        patch_size=4,
    )
    torch.manual_seed(0)
    CLIPVisionModelWithProjection(config).eval().save_pretrained(folder, safe_serialization=True)


def tiny_flux_ip_adapter() -> str:
    """What the `flux-ip-adapter` route loads for `tiny`: `BASE,ADAPTER,IMAGE_ENCODER` folders."""
    recipe = (Path(__file__), *flux.RECIPE)
    adapter = cached_build("tiny-flux-ip-adapter", recipe, _save_adapter)
    encoder = cached_build("tiny-flux-ip-encoder", (Path(__file__),), _save_encoder)
    return f"{flux.tiny_flux_folder()},{adapter},{encoder}"
