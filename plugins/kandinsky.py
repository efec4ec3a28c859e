"""Kandinsky 2.1 and 2.2 priors, loaded with diffusers' own `from_pretrained` from a hub id or a folder."""

from __future__ import annotations

import torch
from diffusers import KandinskyPriorPipeline, KandinskyV22PriorPipeline

from conceptlab.engine.backend import PriorStack
from conceptlab.engine.errors import BackendError

LOAD_ERRORS = (OSError, ValueError, KeyError, EnvironmentError)


class KandinskyBackend:
    """A Kandinsky prior: CLIP text encoder, `PriorTransformer`, `UnCLIPScheduler` and CLIP image encoder."""

    name: str
    default_model: str
    pipeline_class: type
    recommended_learning_rate = 1e-4
    default_oracle = "blip2"

    def load_prior(
        self, model: str, device: torch.device, dtype: torch.dtype, revision: str | None = None
    ) -> PriorStack:
        try:
            pipeline = self.pipeline_class.from_pretrained(model, dtype=dtype, revision=revision)
        except LOAD_ERRORS as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise BackendError(
                f"Could not load the {self.name} prior {model!r} ({reason[:160]}). Download it where the "
                "Hugging Face hub is reachable, or pass a local folder; --model tiny runs offline."
            ) from None
        pipeline.to(device)
        for module in (pipeline.text_encoder, pipeline.prior, pipeline.image_encoder):
            module.requires_grad_(False).eval()
        return PriorStack(
            tokenizer=pipeline.tokenizer,
            text_encoder=pipeline.text_encoder,
            prior=pipeline.prior,
            scheduler=pipeline.scheduler,
            image_encoder=pipeline.image_encoder,
            image_processor=pipeline.image_processor,
            device=device,
            dtype=dtype,
        )


class Kandinsky21Backend(KandinskyBackend):
    name = "kandinsky-2.1"
    default_model = "kandinsky-community/kandinsky-2-1-prior"
    pipeline_class = KandinskyPriorPipeline


class Kandinsky22Backend(KandinskyBackend):
    name = "kandinsky-2.2"
    default_model = "kandinsky-community/kandinsky-2-2-prior"
    pipeline_class = KandinskyV22PriorPipeline
