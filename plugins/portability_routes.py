"""The `--via` routes: SDXL with IP-Adapter for Kandinsky 2.2 concepts, Stable unCLIP for Kandinsky 2.1 concepts.

Each takes the concept's prior image embedding where the model takes a CLIP image embedding of its own image
encoder: IP-Adapter's `ip_adapter_image_embeds` (its unconditional embedding is zeros, as diffusers' `encode_image`
makes it for this adapter), and Stable unCLIP's `image_embeds` (noised by `noise_level`, as an image's would be).
"""

from __future__ import annotations

from typing import Any

import PIL.Image
import torch
from diffusers import StableDiffusionXLPipeline, StableUnCLIPImg2ImgPipeline

from conceptlab.engine.errors import BackendError
from conceptlab.engine.io.images import finite_images
from conceptlab.engine.portability.routes import RouteSettings
from conceptlab.plugins import tiny
from conceptlab.plugins.kandinsky import LOAD_ERRORS, VIT_BIGG_14, VIT_L_14

SDXL_BASE = "stabilityai/stable-diffusion-xl-base-1.0"
IP_ADAPTER = "h94/IP-Adapter"
IP_ADAPTER_SUBFOLDER = "sdxl_models"
IP_ADAPTER_WEIGHTS = "ip-adapter_sdxl.safetensors"
UNCLIP = "stabilityai/stable-diffusion-2-1-unclip-small"


def _load(what: str, load: Any) -> Any:
    try:
        pipeline = load()
    except LOAD_ERRORS as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BackendError(
            f"Could not load {what} ({reason[:160]}). Download it where the Hugging Face hub is reachable, or pass "
            "a local folder with --via-model; --model tiny runs offline."
        ) from None
    pipeline.set_progress_bar_config(disable=True)
    for component in pipeline.components.values():
        if isinstance(component, torch.nn.Module):
            component.requires_grad_(False).eval()
    return pipeline


class IpAdapterSdxlPipeline:
    def __init__(self, pipeline: StableDiffusionXLPipeline, device: torch.device, dtype: torch.dtype):
        self.pipeline, self.device, self.dtype = pipeline, device, dtype
        self.width = int(pipeline.unet.encoder_hid_proj.image_projection_layers[0].image_embeds.in_features)

    def render(self, prompt: str, image_embeds: torch.Tensor, seed: int, settings: RouteSettings) -> PIL.Image.Image:
        self.pipeline.set_ip_adapter_scale(settings.ip_scale)
        embeds = image_embeds.reshape(1, 1, -1).to(self.device, self.dtype)
        if settings.guidance > 1:
            embeds = torch.cat([torch.zeros_like(embeds), embeds])
        with torch.inference_mode():
            pixels = self.pipeline(
                prompt,
                ip_adapter_image_embeds=[embeds],
                height=settings.size,
                width=settings.size,
                num_inference_steps=settings.steps,
                guidance_scale=settings.guidance,
                generator=torch.Generator().manual_seed(seed),
                output_type="np",
            ).images
        return finite_images(pixels, f"The image of seed {seed}")[0]


class IpAdapterSdxlRoute:
    """SDXL with the IP-Adapter whose image encoder is OpenCLIP ViT-bigG/14 (the Kandinsky 2.2 prior's)."""

    name = "ip-adapter-sdxl"
    spaces = {VIT_BIGG_14: f"{SDXL_BASE},{IP_ADAPTER}", **tiny.image_spaces()}  # noqa: RUF012 (read-only)
    options = frozenset({"ip_scale"})

    def recommended(self, model: str) -> dict[str, Any]:
        return {"size": 1024, "steps": 30, "guidance": 5.0, "ip_scale": 0.6} | tiny.recommended(self.name, model)

    def load(self, model: str, device: torch.device, dtype: torch.dtype) -> IpAdapterSdxlPipeline:
        """`model` is `BASE[,ADAPTER]`: an SDXL id or folder, and an IP-Adapter repository or folder holding
        `sdxl_models/ip-adapter_sdxl.safetensors` (default h94/IP-Adapter); `tiny` builds both locally."""
        base, _, adapter = tiny.reference(self.name, model).partition(",")
        adapter = adapter or IP_ADAPTER

        def load() -> StableDiffusionXLPipeline:
            pipeline = StableDiffusionXLPipeline.from_pretrained(base, dtype=dtype)
            pipeline.load_ip_adapter(
                adapter, subfolder=IP_ADAPTER_SUBFOLDER, weight_name=IP_ADAPTER_WEIGHTS, image_encoder_folder=None
            )
            return pipeline.to(device)

        return IpAdapterSdxlPipeline(_load(f"SDXL {base!r} with IP-Adapter {adapter!r}", load), device, dtype)


class UnclipPipeline:
    def __init__(self, pipeline: StableUnCLIPImg2ImgPipeline, device: torch.device, dtype: torch.dtype):
        self.pipeline, self.device, self.dtype = pipeline, device, dtype
        self.width = int(pipeline.image_normalizer.config.embedding_dim)

    def render(self, prompt: str, image_embeds: torch.Tensor, seed: int, settings: RouteSettings) -> PIL.Image.Image:
        with torch.inference_mode():
            pixels = self.pipeline(
                prompt=prompt,
                image_embeds=image_embeds.reshape(1, -1).to(self.device, self.dtype),
                noise_level=settings.noise_level,
                height=settings.size,
                width=settings.size,
                num_inference_steps=settings.steps,
                guidance_scale=settings.guidance,
                generator=torch.Generator().manual_seed(seed),
                output_type="np",
            ).images
        return finite_images(pixels, f"The image of seed {seed}")[0]


class UnclipRoute:
    """Stable unCLIP conditioned on CLIP ViT-L/14 image embeddings (the Kandinsky 2.1 prior's image space)."""

    name = "unclip"
    spaces = {VIT_L_14: UNCLIP, **tiny.image_spaces()}  # noqa: RUF012 (read-only)
    options = frozenset({"noise_level"})

    def recommended(self, model: str) -> dict[str, Any]:
        return {"size": 768, "steps": 20, "guidance": 10.0, "noise_level": 0} | tiny.recommended(self.name, model)

    def load(self, model: str, device: torch.device, dtype: torch.dtype) -> UnclipPipeline:
        model = tiny.reference(self.name, model)

        def load() -> StableUnCLIPImg2ImgPipeline:
            return StableUnCLIPImg2ImgPipeline.from_pretrained(model, dtype=dtype).to(device)

        return UnclipPipeline(_load(f"Stable unCLIP {model!r}", load), device, dtype)
