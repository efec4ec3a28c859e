"""The `kandinsky-neg` baseline: the run's own backend with the negatives as the prior's negative prompt."""

from __future__ import annotations

from PIL import Image

from conceptlab.engine.evaluation.baselines import BaselineRequest, negative_prompt
from conceptlab.engine.evaluation.metrics import prompt_for
from conceptlab.engine.models.loading import load_decoder, load_prior
from conceptlab.engine.rendering.render import render_prompts, render_settings


class KandinskyNegativeBaseline:
    """As in the paper: for Kandinsky the negative prompt goes to the prior (and its output to the decoder)."""

    name = "kandinsky-neg"
    description = "the backend's prior and decoder with the negatives as the prior's negative prompt"
    uses_backend = True

    def render(self, request: BaselineRequest) -> list[Image.Image]:
        loaded = request.loaded or load_prior(request.backend)
        choice = request.backend
        decoder = request.decoder or load_decoder(loaded, choice.decoder, choice.decoder_revision)
        settings = render_settings(
            loaded.backend, size=request.size, steps=request.steps, prior_steps=request.prior_steps
        )
        seeds = list(range(request.seed, request.seed + request.count))
        prompts = [prompt_for(request.category)] * request.count
        return render_prompts(
            loaded.stack,
            decoder,
            prompts,
            seeds,
            settings,
            negative_prompt(request.negatives),
            on_image=request.on_image,
        )
