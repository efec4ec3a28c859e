"""The `sd-neg` baseline: Stable Diffusion (2.1 by default) with the negatives as its negative prompt."""

from __future__ import annotations

import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

from conceptlab.engine.errors import BackendError, short_reason
from conceptlab.engine.evaluation.baselines import BaselineRequest, negative_prompt
from conceptlab.engine.evaluation.metrics import prompt_for
from conceptlab.engine.io.images import finite_images
from conceptlab.engine.models.devices import resolve_device, resolve_dtype
from conceptlab.engine.models.plugins import backend_names, load_backend
from conceptlab.engine.models.settings import SD_ROLE, load_settings
from conceptlab.plugins import tiny
from conceptlab.plugins.kandinsky import LOAD_ERRORS

DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 7.5


def load_stable_diffusion(model: str, device: torch.device, dtype: torch.dtype) -> StableDiffusionPipeline:
    try:
        pipeline = StableDiffusionPipeline.from_pretrained(
            model, dtype=dtype, safety_checker=None, requires_safety_checker=False
        )
    except LOAD_ERRORS as error:
        raise BackendError(
            f"Could not load Stable Diffusion {model!r} for the sd-neg baseline ({short_reason(error)}). Download it "
            "where the hub is reachable or pass a local folder with --sd-model; --model tiny runs offline."
        ) from None
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)


class StableDiffusionNegativeBaseline:
    name = "sd-neg"
    description = "Stable Diffusion with the negatives as negative prompt"
    default_model = "stabilityai/stable-diffusion-2-1"
    uses_backend = False
    settings_role = SD_ROLE
    """The settings file's key that names its weights for a backend (`[models.<backend>] sd = ...`)."""

    def _model(self, request: BaselineRequest) -> str:
        """`--sd-model`, else the settings file's `sd` for the run's backend, else the backend's own (`default_sd`,
        the tiny backend's tiny one), else the default."""
        if request.model:
            return request.model
        name = request.backend.backend or request.backend.model
        backend = load_backend(name) if name in backend_names() else None
        named = load_settings().model(name, self.settings_role)[0] if name else None
        return named or getattr(backend, "default_sd", None) or self.default_model

    def render(self, request: BaselineRequest) -> list[Image.Image]:
        model = tiny.reference(self.name, self._model(request))
        device = resolve_device(request.backend.device)
        pipeline = load_stable_diffusion(model, device, resolve_dtype(request.backend.dtype, device))
        images = []
        for index in range(request.count):
            generator = torch.Generator(device="cpu").manual_seed(request.seed + index)
            output = pipeline(
                prompt_for(request.category),
                negative_prompt=negative_prompt(request.negatives) or None,
                num_inference_steps=request.steps or DEFAULT_STEPS,
                guidance_scale=DEFAULT_GUIDANCE,
                height=request.size,
                width=request.size,
                generator=generator,
                output_type="np",
            )
            images += finite_images(output.images, f"The {self.name} image of seed {request.seed + index}")
            if request.on_image:
                request.on_image(index)
        return images
