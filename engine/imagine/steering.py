"""How each model family samples with a negative list that grows: the stock diffusers pipeline, called once per
image with `callback_on_step_end`, which swaps the unconditional branch of classifier-free guidance.

* Kandinsky 2.2 (and the tiny backend): the decoder's guidance runs on `[negative image embedding, image
  embedding]`; the negative image embedding becomes the prior's output for the joined negatives.
* SDXL: `[negative, positive]` prompt embeddings and pooled embeddings, the negatives encoded by the pipeline's own
  `encode_prompt`. SD3: the same with its three text encoders.
* FLUX.1: true classifier-free guidance's negative T5 and pooled CLIP embeddings, replaced in place (`FluxRoute`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch

from conceptlab.engine.models.loading import LoadedPrior
from conceptlab.engine.rendering.render import RenderSettings, prior_image_embeds, seeded_generator

NEGATIVE_SEED = 0
"""The prior's seed for every negative list's image embedding (see `KandinskyRoute.negative_embeds`)."""


def to_pil(pixels: torch.Tensor) -> PIL.Image.Image:
    """A `[1, 3, H, W]` tensor in [-1, 1] as an RGB image."""
    array = ((pixels[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return PIL.Image.fromarray(np.ascontiguousarray(array))


def shrink_latents(x0: torch.Tensor, size: int, side: int | None) -> torch.Tensor:
    """`x0` area-averaged down so that it decodes to about `side` pixels instead of `size` (the image's side): the
    oracle sees `side` pixels anyway, and decoding costs in proportion to the pixels. Never enlarged."""
    if side is None or side >= size:
        return x0
    height, width = x0.shape[-2:]
    target = (max(1, -(-height * side // size)), max(1, -(-width * side // size)))
    return torch.nn.functional.interpolate(x0.float(), size=target, mode="area").to(x0.dtype)


@dataclass
class Settings:
    steps: int
    guidance: float
    size: int


class Route:
    """One family's pipeline: its call, how a new negative prompt enters it, how x̂0 becomes a picture."""

    pipeline: Any
    tensor_inputs: tuple[str, ...]
    preview_decoder: Any = None
    """A tiny autoencoder for previews, or None: the model's own."""

    def arguments(self, prompt: str, seed: int, negative: str, settings: Settings) -> dict[str, Any]:
        raise NotImplementedError

    def with_negative(self, tensors: dict[str, torch.Tensor], negative: str) -> dict[str, torch.Tensor]:
        """The callback's tensors with the unconditional half replaced by `negative`'s encoding."""
        raise NotImplementedError

    def preview(self, x0: torch.Tensor) -> PIL.Image.Image:
        """x̂0 decoded to a picture (latents already shrunk to the oracle's size by `shrink_latents`)."""
        raise NotImplementedError

    def official_preview(self, x0: torch.Tensor) -> PIL.Image.Image:
        """x̂0 decoded as the official code decodes it (flow-matching families only)."""
        raise NotImplementedError

    def spatial(self, x0: torch.Tensor) -> torch.Tensor:
        """x̂0 as the decoder's `[1, C, H, W]` latents (FLUX packs its latents into tokens)."""
        return x0


class KandinskyRoute(Route):
    tensor_inputs = ("image_embeds",)

    def __init__(self, loaded: LoadedPrior, decoder: Any, render: RenderSettings):
        self.loaded, self.decoder, self.render = loaded, decoder, render
        self.pipeline = decoder.pipeline
        self.pipeline.set_progress_bar_config(disable=True)
        self.negative_cache: dict[str, torch.Tensor] = {}

    def negative_embeds(self, negative: str) -> torch.Tensor:
        """The prior's image embedding for the joined negatives, sampled from one fixed seed whatever the image's,
        so images that reach the same list share it (computed once per list and run)."""
        if negative not in self.negative_cache:
            self.negative_cache[negative] = prior_image_embeds(
                self.loaded.stack, [negative], NEGATIVE_SEED, self.render
            )[0]
        return self.negative_cache[negative]

    def arguments(self, prompt: str, seed: int, negative: str, settings: Settings) -> dict[str, Any]:
        image_embeds, plain_negative = prior_image_embeds(self.loaded.stack, [prompt], seed, self.render)
        negative_embeds = self.negative_embeds(negative) if negative else plain_negative
        return {
            "image_embeds": image_embeds.to(self.decoder.device, self.decoder.dtype),
            "negative_image_embeds": negative_embeds.to(self.decoder.device, self.decoder.dtype),
            "height": settings.size,
            "width": settings.size,
            "num_inference_steps": settings.steps,
            "guidance_scale": settings.guidance,
            "generator": seeded_generator(seed),
        }

    def with_negative(self, tensors: dict[str, torch.Tensor], negative: str) -> dict[str, torch.Tensor]:
        both = tensors["image_embeds"]
        positive = both.chunk(2)[1]
        new = self.negative_embeds(negative).to(both.device, both.dtype)
        return {"image_embeds": torch.cat([new, positive])}

    @torch.inference_mode()
    def preview(self, x0: torch.Tensor) -> PIL.Image.Image:
        movq = self.pipeline.movq
        return to_pil(movq.decode(x0.to(movq.dtype), force_not_quantize=True).sample)


POOLED_NAMES = {"StableDiffusionXLPipeline": "add_text_embeds", "StableDiffusion3Pipeline": "pooled_prompt_embeds"}
"""The pooled text embedding's tensor name in each family's pipeline class (its step callback's input)."""
FLUX_FAMILY = "FluxPipeline"
FLOW_MATCHING = ("StableDiffusion3Pipeline", FLUX_FAMILY)
"""The families whose x̂0 the official code's `latents − prediction` estimates (flow matching)."""


class StableDiffusionRoute(Route):
    """SDXL and SD3: the pipeline's own `encode_prompt` encodes the negatives, its VAE (or a tiny one) decodes."""

    def __init__(self, pipeline: Any, pooled_name: str, preview_decoder: Any = None):
        self.pipeline = pipeline
        self.pooled_name = pooled_name
        self.tensor_inputs = ("prompt_embeds", pooled_name)
        self.preview_decoder = preview_decoder

    def arguments(self, prompt: str, seed: int, negative: str, settings: Settings) -> dict[str, Any]:
        return {
            "prompt": prompt,
            "negative_prompt": negative or None,
            "height": settings.size,
            "width": settings.size,
            "num_inference_steps": settings.steps,
            "guidance_scale": settings.guidance,
            "generator": seeded_generator(seed),
        }

    @torch.inference_mode()
    def encode_negative(self, negative: str) -> tuple[torch.Tensor, torch.Tensor]:
        """`negative` encoded as the pipeline encodes a negative prompt (same text encoders, padding, layers)."""
        encoded = self.pipeline.encode_prompt(
            prompt=negative,
            device=self.pipeline._execution_device,
            do_classifier_free_guidance=False,
            **_more_prompts(self.pipeline),
        )
        return encoded[0], encoded[2]

    def with_negative(self, tensors: dict[str, torch.Tensor], negative: str) -> dict[str, torch.Tensor]:
        embeds, pooled = self.encode_negative(negative)
        if not negative and getattr(self.pipeline.config, "force_zeros_for_empty_prompt", False):
            embeds, pooled = torch.zeros_like(embeds), torch.zeros_like(pooled)  # as SDXL's empty negative
        both, both_pooled = tensors["prompt_embeds"], tensors[self.pooled_name]
        return {
            "prompt_embeds": torch.cat([embeds.to(both.dtype), both.chunk(2)[1]]),
            self.pooled_name: torch.cat([pooled.to(both_pooled.dtype), both_pooled.chunk(2)[1]]),
        }

    @torch.inference_mode()
    def official_preview(self, x0: torch.Tensor) -> PIL.Image.Image:
        """x̂0 as the official `_latents_to_rgb` decodes it: the pipeline's own VAE at full size, then its image
        processor's `postprocess` to a picture."""
        vae = self.pipeline.vae
        latents = x0 / vae.config.scaling_factor + (getattr(vae.config, "shift_factor", None) or 0.0)
        images = vae.decode(latents.to(vae.dtype), return_dict=False)[0]
        return self.pipeline.image_processor.postprocess(images, output_type="pil")[0]

    @torch.inference_mode()
    def preview(self, x0: torch.Tensor) -> PIL.Image.Image:
        vae = self.preview_decoder or self.pipeline.vae  # as the pipeline decodes, whichever autoencoder it has
        latents = x0 / vae.config.scaling_factor + (getattr(vae.config, "shift_factor", None) or 0.0)
        return to_pil(vae.decode(latents.to(vae.device, vae.dtype)).sample)


class FluxRoute(StableDiffusionRoute):
    """FLUX.1 (`FluxPipeline`): guidance-distilled, so negatives act only through true classifier-free guidance
    (`true_cfg_scale` = `--guidance` > 1, with a negative prompt, "" when there is none yet), a second transformer
    call on the negative's T5 and pooled CLIP embeddings.

    The step callback may replace only `latents` and `prompt_embeds` (`FluxPipeline._callback_tensor_inputs`), not
    the negative embeddings. So the negative is encoded here with the pipeline's own `encode_prompt` (as the
    pipeline encodes `negative_prompt`) and handed over as `negative_prompt_embeds` and
    `negative_pooled_prompt_embeds`, which the pipeline uses as given for every step; a grown list is re-encoded
    and copied into those same tensors (T5's are padded to `max_sequence_length`, so the shapes never change).
    While the list does not grow nothing is touched: the image is the stock pipeline's with `negative_prompt`."""

    tensor_inputs = ("latents",)

    def __init__(self, pipeline: Any, distilled_guidance: float | None, max_tokens: int | None, preview: Any = None):
        self.pipeline, self.preview_decoder = pipeline, preview
        self.distilled_guidance, self.max_tokens = distilled_guidance, max_tokens
        self.negative: tuple[torch.Tensor, torch.Tensor] | None = None
        self.size = 0

    def encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """`(T5 embeds, pooled CLIP embeds)` of `text`, as the pipeline encodes a prompt."""
        more = {"max_sequence_length": self.max_tokens} if self.max_tokens else {}
        embeds, pooled, _ = self.pipeline.encode_prompt(
            prompt=text, prompt_2=None, device=self.pipeline._execution_device, **more
        )
        return embeds, pooled

    def arguments(self, prompt: str, seed: int, negative: str, settings: Settings) -> dict[str, Any]:
        self.negative, self.size = self.encode(negative), settings.size
        arguments = {
            "prompt": prompt,
            "negative_prompt_embeds": self.negative[0],
            "negative_pooled_prompt_embeds": self.negative[1],
            "true_cfg_scale": settings.guidance,
            "height": settings.size,
            "width": settings.size,
            "num_inference_steps": settings.steps,
            "generator": seeded_generator(seed),
        }
        if self.distilled_guidance is not None:
            arguments["guidance_scale"] = self.distilled_guidance
        if self.max_tokens:
            arguments["max_sequence_length"] = self.max_tokens
        return arguments

    def with_negative(self, tensors: dict[str, torch.Tensor], negative: str) -> dict[str, torch.Tensor]:
        embeds, pooled = self.encode(negative)
        self.negative[0].copy_(embeds)
        self.negative[1].copy_(pooled)
        return {}

    def spatial(self, x0: torch.Tensor) -> torch.Tensor:
        """Packed `[1, tokens, 4·C]` latents as the VAE's `[1, C, H, W]` (the pipeline's `_unpack_latents`)."""
        return self.pipeline._unpack_latents(x0, self.size, self.size, self.pipeline.vae_scale_factor)


def _more_prompts(pipeline: Any) -> dict[str, Any]:
    """SD3's `encode_prompt` also takes its second and third prompts (None: the first)."""
    return {"prompt_2": None, "prompt_3": None} if hasattr(pipeline, "text_encoder_3") else {}
