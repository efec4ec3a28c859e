"""Kandinsky 2.1 and 2.2 priors and decoders, loaded with diffusers' own `from_pretrained` from a hub id or a folder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from diffusers import KandinskyPipeline, KandinskyPriorPipeline, KandinskyV22Pipeline, KandinskyV22PriorPipeline

from conceptlab.engine.errors import BackendError, UsageError, short_reason
from conceptlab.engine.models.backend import DecoderStack, PriorStack
from conceptlab.engine.portability.routes import ImageSpace

VIT_L_14 = ImageSpace("CLIP ViT-L/14 (openai/clip-vit-large-patch14)", 768)
"""The 2.1 prior's image encoder: its config names openai/clip-vit-large-patch14 (1024 wide, 24 layers, 768-d)."""
VIT_BIGG_14 = ImageSpace("OpenCLIP ViT-bigG/14", 1280)
"""The 2.2 prior's image encoder: an OpenCLIP ViT-bigG/14 config (1664 wide, 48 layers, 1280-d)."""

LOAD_ERRORS = (OSError, ValueError, KeyError, EnvironmentError)


def _from_pretrained(
    pipeline_class: type, what: str, model: str, dtype: torch.dtype, revision: str | None, option: str = "--model"
) -> Any:
    """Load a pipeline; a missing or unreadable model is one line naming it, the option that names another, and
    the offline alternative."""
    try:
        return pipeline_class.from_pretrained(model, dtype=dtype, revision=revision)
    except LOAD_ERRORS as error:
        raise BackendError(
            f"Could not load the {what} {model!r} ({short_reason(error)}). Download it where the "
            f"Hugging Face hub is reachable, or pass a local folder with {option} (or in conceptlab.toml); "
            "--model tiny runs offline."
        ) from None


class KandinskyBackend:
    """A Kandinsky prior (CLIP text encoder, `PriorTransformer`, `UnCLIPScheduler`, CLIP image encoder) and decoder."""

    name: str
    default_model: str
    default_decoder: str
    pipeline_class: type
    decoder_pipeline_class: type
    recommended_learning_rate = 1e-4
    default_oracle = "blip2"
    recommended_render: dict[str, Any] = {}  # noqa: RUF012 (read-only class default)
    evaluation_clip = "clip"
    default_constraint_encoder = "prior"
    known_words = None
    default_for: tuple[str, ...] = ()
    decoder_step_callback = False
    imagine_oracle = "vilt"
    default_sd: str | None = None

    @staticmethod
    def first_use() -> str | None:
        """Nothing is built here: the weights come from the hub or a folder."""
        return None

    def load_prior(
        self, model: str, device: torch.device, dtype: torch.dtype, revision: str | None = None
    ) -> PriorStack:
        pipeline = _from_pretrained(self.pipeline_class, f"{self.name} prior", model, dtype, revision)
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

    def load_decoder(
        self, model: str | None, device: torch.device, dtype: torch.dtype, revision: str | None = None
    ) -> DecoderStack:
        model = model or self.default_decoder
        what = f"{self.name} decoder"
        pipeline = _from_pretrained(self.decoder_pipeline_class, what, model, dtype, revision, "--decoder")
        pipeline.to(device)
        for module in pipeline.components.values():
            if isinstance(module, torch.nn.Module):
                module.requires_grad_(False).eval()
        pipeline.set_progress_bar_config(disable=True)
        return DecoderStack(pipeline=pipeline, device=device, dtype=dtype)

    def constraint_embedder(self, decoder: DecoderStack, device: torch.device) -> Callable[[list[str]], torch.Tensor]:
        raise UsageError(
            f"--constraint-encoder mclip needs Kandinsky 2.1's decoder M-CLIP, which {self.name} has not; "
            "use --constraint-encoder prior."
        )


class Kandinsky21Backend(KandinskyBackend):
    name = "kandinsky-2.1"
    default_model = "kandinsky-community/kandinsky-2-1-prior"
    default_decoder = "kandinsky-community/kandinsky-2-1"
    pipeline_class = KandinskyPriorPipeline
    decoder_pipeline_class = KandinskyPipeline
    image_space = VIT_L_14
    default_for = ("concepts",)
    """The official code's prior: what a command trains and renders with when neither --model nor a concept names
    one."""
    default_constraint_encoder = "mclip"
    """The official code embeds constraints with the 2.1 decoder's M-CLIP (`get_normed_embeds`, `training/coach.py`)."""

    def constraint_embedder(self, decoder: DecoderStack, device: torch.device) -> Callable[[list[str]], torch.Tensor]:
        """M-CLIP's projected, mask-averaged output for each prompt, tokenized as the official `get_normed_embeds`
        does (XLM-R, padded to 77). It runs where its weights are (the CPU when offloaded)."""
        tokenizer, text_encoder = decoder.pipeline.tokenizer, decoder.pipeline.text_encoder

        @torch.no_grad()
        def embed(prompts: list[str]) -> torch.Tensor:
            tokens = tokenizer(
                prompts,
                padding="max_length",
                truncation=True,
                max_length=77,
                return_attention_mask=True,
                add_special_tokens=True,
                return_tensors="pt",
            )
            where = next(text_encoder.parameters()).device
            projected, _ = text_encoder(
                input_ids=tokens.input_ids.to(where), attention_mask=tokens.attention_mask.to(where)
            )
            return projected.to(device, torch.float32)

        return embed


class Kandinsky22Backend(KandinskyBackend):
    name = "kandinsky-2.2"
    default_model = "kandinsky-community/kandinsky-2-2-prior"
    default_decoder = "kandinsky-community/kandinsky-2-2-decoder"
    pipeline_class = KandinskyV22PriorPipeline
    decoder_pipeline_class = KandinskyV22Pipeline
    image_space = VIT_BIGG_14
    default_for = ("imagine",)
    """What `imagine` steers when --model is left out."""
    decoder_step_callback = True
    """Diffusers' 2.2 decoder pipeline takes `callback_on_step_end` (2.1's does not), so `imagine` can steer it."""
