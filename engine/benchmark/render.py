"""The render and oracle rows of `conceptlab bench`: one render at the model's recommended size and steps, and one
call of each oracle on two images, timed on a loaded model."""

from __future__ import annotations

import torch
from PIL import Image

from conceptlab.engine.adaptive.oracle import Oracle, OracleOptions, Question, load_oracle
from conceptlab.engine.benchmark.timing import median_ms
from conceptlab.engine.models.backend import DecoderStack, PriorStack
from conceptlab.engine.models.devices import dtype_name
from conceptlab.engine.models.loading import ModelChoice, load_decoder, load_prior
from conceptlab.engine.rendering.render import RenderSettings, render_prompts, render_settings


def time_render(
    stack: PriorStack, decoder: DecoderStack, settings: RenderSettings, device: torch.device, repeats: int
) -> float:
    """Milliseconds per rendered image (prior sampling and decoding), median of `repeats` after one warm-up."""
    return median_ms(lambda: render_prompts(stack, decoder, ["a photo of a cat"], [0], settings), device, 1, repeats)


def time_oracle(oracle: Oracle, images: list[Image.Image], device: torch.device, repeats: int) -> float:
    """Milliseconds per oracle call on `images` (one question per image), after one warm-up."""
    return median_ms(lambda: oracle.ask(images, Question("pet"), []), device, 1, repeats)


def render_and_oracle_rows(
    model: str, oracles: tuple[tuple[str, str | None], ...], device: torch.device, dtype: torch.dtype, repeats: int
) -> tuple[dict, dict]:
    """On `model`: one render (its recommended size and steps) and one call of each oracle (name, its weights) on
    2 images."""
    loaded = load_prior(ModelChoice(model=model, device=str(device), dtype=dtype_name(dtype)))
    decoder = load_decoder(loaded)
    settings = render_settings(loaded.backend)
    render = {
        "model": model,
        "size": settings.size,
        "steps": settings.steps,
        "ms_per_image": time_render(loaded.stack, decoder, settings, device, repeats),
    }
    images = render_prompts(loaded.stack, decoder, ["a photo of a cat", "a photo of a dog"], [0, 1], settings)
    oracle = {"model": model, "images_per_call": len(images)}
    for name, weights in oracles:
        timed = load_oracle(name, loaded, OracleOptions(model=weights))
        oracle[f"{name}_ms_per_call"] = time_oracle(timed, images, device, repeats)
    return render, oracle
