"""The `--via` routes: SDXL with IP-Adapter for Kandinsky 2.2 concepts; Stable unCLIP and FLUX.1 with XLabs'
IP-Adapter for Kandinsky 2.1 concepts.

Each takes the concept's prior image embedding where the model takes a CLIP image embedding of its own image
encoder: IP-Adapter's `ip_adapter_image_embeds` (its unconditional embedding is zeros, as diffusers' `encode_image`
makes it for this adapter), Stable unCLIP's `image_embeds` (noised by `noise_level`, as an image's would be), and
FLUX's `ip_adapter_image_embeds` (its negative the CLIP embedding of a black image, as diffusers and XLabs make it).
"""

from __future__ import annotations

from typing import Any

import PIL.Image
import torch
from diffusers import FluxPipeline, StableDiffusionXLPipeline, StableUnCLIPImg2ImgPipeline

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
FLUX_DEV = "black-forest-labs/FLUX.1-dev"
FLUX_IP_ADAPTER = "XLabs-AI/flux-ip-adapter"
FLUX_IP_ADAPTER_WEIGHTS = "ip_adapter.safetensors"
FLUX_IMAGE_ENCODER = "openai/clip-vit-large-patch14"
"""XLabs' image encoder (`XFluxPipeline.image_encoder_path` in XLabs-AI/x-flux, src/flux/xflux_pipeline.py): its
projected pooled `image_embeds` (768-d) feed the adapter's `ImageProjModel(4096, 768, 4)`."""


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


class FluxIpAdapterPipeline:
    def __init__(self, pipeline: FluxPipeline, device: torch.device, dtype: torch.dtype):
        self.pipeline, self.device, self.dtype = pipeline, device, dtype
        self.width = int(pipeline.transformer.encoder_hid_proj.image_projection_layers[0].image_embeds.in_features)

    def render(self, prompt: str, image_embeds: torch.Tensor, seed: int, settings: RouteSettings) -> PIL.Image.Image:
        """True CFG on "" (`true_cfg_scale` = the guidance), so the negative image embedding (a black image's, which
        the pipeline encodes) acts, as in XLabs' and diffusers' IP-Adapter examples."""
        self.pipeline.set_ip_adapter_scale(settings.ip_scale)
        with torch.inference_mode():
            return self.pipeline(
                prompt,
                negative_prompt="",
                true_cfg_scale=settings.guidance,
                ip_adapter_image_embeds=[image_embeds.reshape(1, 1, -1).to(self.device, self.dtype)],
                height=settings.size,
                width=settings.size,
                num_inference_steps=settings.steps,
                generator=torch.Generator().manual_seed(seed),
            ).images[0]


class FluxIpAdapterRoute:
    """FLUX.1-dev with XLabs' IP-Adapter, whose image encoder is CLIP ViT-L/14 (the Kandinsky 2.1 prior's)."""

    name = "flux-ip-adapter"
    spaces = {  # noqa: RUF012 (read-only)
        VIT_L_14: f"{FLUX_DEV},{FLUX_IP_ADAPTER},{FLUX_IMAGE_ENCODER}",
        **tiny.image_spaces(),
    }
    options = frozenset({"ip_scale"})

    def recommended(self, model: str) -> dict[str, Any]:
        """1024 px, FluxPipeline's 28 steps, true CFG 4.0 and adapter scale 1.0 (XLabs' `ip_scale` default)."""
        return {"size": 1024, "steps": 28, "guidance": 4.0, "ip_scale": 1.0} | tiny.recommended(self.name, model)

    def load(self, model: str, device: torch.device, dtype: torch.dtype) -> FluxIpAdapterPipeline:
        """`model` is `BASE[,ADAPTER[,IMAGE_ENCODER]]`: a FLUX.1 id or folder, a folder or repository holding
        `ip_adapter.safetensors` (default XLabs-AI/flux-ip-adapter) and its CLIP image encoder (default
        openai/clip-vit-large-patch14); `tiny` builds all three locally."""
        base, adapter, encoder = [*tiny.reference(self.name, model).split(","), "", ""][:3]
        adapter, encoder = adapter or FLUX_IP_ADAPTER, encoder or FLUX_IMAGE_ENCODER

        def load() -> FluxPipeline:
            pipeline = FluxPipeline.from_pretrained(base, dtype=dtype)
            pipeline.load_ip_adapter(
                adapter,
                weight_name=FLUX_IP_ADAPTER_WEIGHTS,
                image_encoder_pretrained_model_name_or_path=encoder,
                image_encoder_dtype=dtype,
            )
            return pipeline.to(device)

        return FluxIpAdapterPipeline(_load(f"FLUX {base!r} with IP-Adapter {adapter!r}", load), device, dtype)
