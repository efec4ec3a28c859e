"""From prompts to pictures: the prior turns a prompt into a CLIP image embedding, the decoder paints it.

The concept reaches the image only through the prior's image embedding (as in the official ConceptLab code): the
decoder's own text prompt (Kandinsky 2.1 has one) is empty unless `decoder_prompt` is set. One seed drives both
stages: the prior and the decoder each draw their noise from a CPU `torch.Generator` seeded with it, so a seed gives
the same image on every run (and nearly the same on every device).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import PIL.Image
import torch

from conceptlab.engine.errors import UsageError
from conceptlab.engine.io.images import finite_images
from conceptlab.engine.models.backend import Backend, DecoderStack, PriorStack
from conceptlab.engine.options import check_bounds
from conceptlab.engine.prior.sampling import sample_image_embeds
from conceptlab.engine.prior.tokens import encode_prompts


@dataclass(frozen=True)
class RenderSettings:
    """How images are rendered; the defaults are the official code's (and diffusers' prior pipelines')."""

    size: int = 512
    steps: int = 50
    guidance: float = 7.5
    prior_steps: int = 5
    """The official code's (`scripts/infer.py`, `training/coach.py`): the sampler the token was optimized against."""
    prior_guidance: float = 4.0
    decoder_prompt: str = ""
    """The decoder's own text prompt (Kandinsky 2.1 only); empty as in the official code."""

    def __post_init__(self) -> None:
        """Refuse what no sampler can run (zero steps divide by zero deep in diffusers), naming the option."""
        check_bounds(self)
        if self.size <= 0:
            raise UsageError(f"--size must be a positive number of pixels (got {self.size}).")
        if self.steps < 1:
            raise UsageError(f"--steps must be at least 1 (got {self.steps}).")
        if self.prior_steps < 1:
            raise UsageError(f"--prior-steps must be at least 1 (got {self.prior_steps}).")
        for option, value in (("--guidance", self.guidance), ("--prior-guidance", self.prior_guidance)):
            if not math.isfinite(value) or value < 0:
                raise UsageError(f"{option} must be a finite number, 0 or more (got {value}).")


def render_settings(backend: Backend, **chosen: Any) -> RenderSettings:
    """The defaults, then what the backend recommends, then every value the user `chosen` (None: not chosen)."""
    values = {**backend.recommended_render, **{key: value for key, value in chosen.items() if value is not None}}
    return RenderSettings(**values)


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator: diffusers draws on it and moves the noise to the device, so seeds mean the same anywhere."""
    return torch.Generator().manual_seed(seed)


def zero_image_embeds(stack: PriorStack, count: int) -> torch.Tensor:
    """The CLIP image embedding of an all-zero image, `count` times: the decoder's negative image embedding in the
    official code (`create_zero_img_emb` of `kandinsky2/kandinsky2_1_model.py`) and diffusers' `get_zero_embed`."""
    size = stack.image_encoder.config.image_size
    with torch.inference_mode():
        zero = torch.zeros(1, 3, size, size, device=stack.device, dtype=stack.image_encoder.dtype)
        return stack.image_encoder(zero).image_embeds.repeat(count, 1)


def prior_image_embeds(
    stack: PriorStack, prompts: list[str], seed: int, settings: RenderSettings, negative_prompt: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(image_embeds, negative_image_embeds)`, `[len(prompts), dim]` each, for one seed.

    Exactly what diffusers' prior pipelines return for
    `pipeline(prompts, negative_prompt=..., generator=seeded_generator(seed), ...)`. With no `negative_prompt`
    (the official code's and diffusers' default) the prior's guidance is against the empty prompt and the negative
    image embedding is the zero image's; a `negative_prompt` (even "") is run through the prior in the same batch
    and also serves as the unconditional prompt of the prior's guidance.
    """
    negatives = [] if negative_prompt is None else [negative_prompt] * len(prompts)
    with torch.inference_mode():
        batch = encode_prompts(stack.tokenizer, stack.text_encoder, prompts + negatives)
        unconditional = encode_prompts(stack.tokenizer, stack.text_encoder, [negative_prompt or ""])
        embeds = sample_image_embeds(
            stack.prior,
            stack.scheduler,
            batch,
            unconditional,
            num_steps=settings.prior_steps,
            guidance_scale=settings.prior_guidance,
            generator=seeded_generator(seed),
        )
    if negative_prompt is None:
        return embeds, zero_image_embeds(stack, len(prompts)).to(embeds.dtype)
    image_embeds, negative_image_embeds = embeds.chunk(2)
    return image_embeds, negative_image_embeds


def _decoder_text_arguments(decoder: DecoderStack, count: int, settings: RenderSettings) -> dict[str, object]:
    """A decoder with its own text encoder (2.1) gets `decoder_prompt`; one without (2.2) gets nothing."""
    if "prompt" not in inspect.signature(decoder.pipeline.__call__).parameters:
        return {}
    return {"prompt": [settings.decoder_prompt] * count}


def render_image_embeds(
    decoder: DecoderStack,
    image_embeds: torch.Tensor,
    negative_image_embeds: torch.Tensor,
    seed: int,
    settings: RenderSettings,
) -> list[PIL.Image.Image]:
    """Decode `[n, dim]` image embeddings into `n` square images with the decoder pipeline, from one seed."""
    with torch.inference_mode():
        output = decoder.pipeline(
            **_decoder_text_arguments(decoder, image_embeds.shape[0], settings),
            image_embeds=image_embeds.to(decoder.device, decoder.dtype),
            negative_image_embeds=negative_image_embeds.to(decoder.device, decoder.dtype),
            height=settings.size,
            width=settings.size,
            num_inference_steps=settings.steps,
            guidance_scale=settings.guidance,
            generator=seeded_generator(seed),
            output_type="np",
        )
    return finite_images(output.images, f"The image of seed {seed}")


def render_prompts(
    stack: PriorStack,
    decoder: DecoderStack,
    prompts: list[str],
    seeds: list[int],
    settings: RenderSettings,
    negative_prompt: str | None = None,
    *,
    on_image: Callable[[int], None] | None = None,
    before_phase: Callable[[str], None] | None = None,
) -> list[PIL.Image.Image]:
    """One image per `(prompt, seed)`; prompts may hold placeholder tokens already added to the stack's tokenizer.

    All prior work comes first, then all decoding, so a caller that keeps only one model on the GPU at a time
    (`before_phase("prior")`, `before_phase("decoder")`) moves each model once. `on_image(index)` follows each image.
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds; give one seed per prompt.")
    if before_phase:
        before_phase("prior")
    embeds = [prior_image_embeds(stack, [p], s, settings, negative_prompt) for p, s in zip(prompts, seeds, strict=True)]
    if before_phase:
        before_phase("decoder")
    images = []
    for index, ((image_embeds, negative_image_embeds), seed) in enumerate(zip(embeds, seeds, strict=True)):
        images += render_image_embeds(decoder, image_embeds, negative_image_embeds, seed, settings)
        if on_image:
            on_image(index)
    return images
