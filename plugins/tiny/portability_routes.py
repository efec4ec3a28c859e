"""Tiny models for the `--via` routes, built locally from diffusers' own fast-test component configs and cached.

Stable unCLIP: the components of diffusers' `StableUnCLIPImg2ImgPipelineFastTests.get_dummy_components`
(tests/pipelines/stable_unclip/test_stable_unclip_img2img.py), with the embedding width set to the tiny world's
image width and the tiny world's tokenizer in place of the hub's `hf-internal-testing/tiny-random-clip`.
IP-Adapter: an adapter file in h94/IP-Adapter's layout (`sdxl_models/ip-adapter_sdxl.safetensors`, keys
`image_proj.*` and `ip_adapter.<n>.to_k_ip/to_v_ip`, as diffusers' `load_ip_adapter` reads them) for the tiny SDXL
UNet of `sdxl.py`. Every weight is random: the pipelines run a real checkpoint's code path in a fraction of a
second, and their images depend on the image embedding, the seed and the adapter scale.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    StableUnCLIPImg2ImgPipeline,
    UNet2DConditionModel,
)
from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
from safetensors.torch import save_file
from transformers import (
    CLIPImageProcessor,
    CLIPTextModel,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from conceptlab.engine.io.cache import cached_build
from conceptlab.plugins.tiny import TINY_IMAGE_SPACE
from conceptlab.plugins.tiny.fast_test_configs import fast_test_clip_text_config

IP_ADAPTER_SUBFOLDER = "sdxl_models"
IP_ADAPTER_WEIGHTS = "ip-adapter_sdxl.safetensors"
IMAGE_TOKENS = 4
"""IP-Adapter's `ImageProjection` turns one image embedding into 4 extra text tokens."""


def build_tiny_unclip() -> StableUnCLIPImg2ImgPipeline:
    from conceptlab.plugins.tiny.world import build_tokenizer

    width, text_width = TINY_IMAGE_SPACE.width, 32
    torch.manual_seed(0)
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=text_width,
            projection_dim=width,
            num_hidden_layers=5,
            num_attention_heads=4,
            image_size=32,
            intermediate_size=37,
            patch_size=1,
        )
    )
    torch.manual_seed(0)
    image_normalizer = StableUnCLIPImageNormalizer(embedding_dim=width)
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(fast_test_clip_text_config(len(tokenizer), hidden_size=text_width))
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64),
        attention_head_dim=(2, 4),
        class_embed_type="projection",
        projection_class_embeddings_input_dim=width * 2,  # the image embedding and its noise-level embedding
        cross_attention_dim=text_width,
        layers_per_block=1,
        upcast_attention=True,
        use_linear_projection=True,
    )
    torch.manual_seed(0)
    return StableUnCLIPImg2ImgPipeline(
        feature_extractor=CLIPImageProcessor(crop_size=32, size=32),
        image_encoder=image_encoder.eval(),
        image_normalizer=image_normalizer.eval(),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=tokenizer,
        text_encoder=text_encoder.eval(),
        unet=unet.eval(),
        scheduler=DDIMScheduler(
            beta_schedule="scaled_linear",
            beta_start=0.00085,
            beta_end=0.012,
            prediction_type="v_prediction",
            set_alpha_to_one=False,
            steps_offset=1,
        ),
        vae=AutoencoderKL().eval(),
    )


def ip_adapter_state_dict(unet: UNet2DConditionModel, image_width: int) -> dict[str, torch.Tensor]:
    """Random IP-Adapter weights for `unet`, keyed as h94/IP-Adapter's safetensors files are.

    The `ip_adapter` keys are numbered as diffusers' `_convert_ip_adapter_attn_to_diffusers` reads them: 1, 3, 5, ...
    over the UNet's cross-attention processors, in `attn_processors` order.
    """
    cross = unet.config.cross_attention_dim
    torch.manual_seed(0)
    projection = torch.nn.Linear(image_width, cross * IMAGE_TOKENS)
    weights = {
        "image_proj.proj.weight": projection.weight,
        "image_proj.proj.bias": projection.bias,
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        hidden = _hidden_size(unet, name)
        for which in ("to_k_ip", "to_v_ip"):
            weights[f"ip_adapter.{key_id}.{which}.weight"] = torch.nn.Linear(cross, hidden, bias=False).weight
        key_id += 2
    return {key: value.detach().contiguous() for key, value in weights.items()}


def _hidden_size(unet: UNet2DConditionModel, name: str) -> int:
    channels = list(unet.config.block_out_channels)
    if name.startswith("mid_block"):
        return channels[-1]
    block = int(name.split(".")[1])
    return list(reversed(channels))[block] if name.startswith("up_blocks") else channels[block]


def _save_unclip(folder: Path) -> None:
    build_tiny_unclip().save_pretrained(folder, safe_serialization=True)


def tiny_unclip_folder() -> Path:
    """The cached tiny Stable unCLIP pipeline folder, built on first use in a few seconds."""
    from conceptlab.plugins.tiny import fast_test_configs, world

    return cached_build(
        "tiny-unclip", (Path(__file__), Path(fast_test_configs.__file__), Path(world.__file__)), _save_unclip
    )


def tiny_ip_adapter_folder() -> Path:
    """The cached tiny IP-Adapter (h94/IP-Adapter's layout) for the tiny SDXL UNet."""
    from conceptlab.plugins.tiny import sdxl

    base = sdxl.tiny_sdxl_folder()

    def build(folder: Path) -> None:
        unet = UNet2DConditionModel.from_pretrained(base / "unet")
        (folder / IP_ADAPTER_SUBFOLDER).mkdir()
        weights = ip_adapter_state_dict(unet, TINY_IMAGE_SPACE.width)
        save_file(weights, str(folder / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHTS))

    return cached_build("tiny-ip-adapter", (Path(__file__), Path(sdxl.__file__)), build)


def tiny_ip_adapter_sdxl() -> str:
    """What the `ip-adapter-sdxl` route loads for `tiny`: `BASE,ADAPTER`, the tiny SDXL and its tiny IP-Adapter."""
    from conceptlab.plugins.tiny.sdxl import tiny_sdxl_folder

    return f"{tiny_sdxl_folder()},{tiny_ip_adapter_folder()}"
