"""The `clip` evaluator: any `CLIPModel` checkpoint (hub id or folder); the tiny one is `tiny/clip.py`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import CLIPModel, CLIPProcessor

from conceptlab.engine.errors import BackendError, short_reason
from conceptlab.plugins.kandinsky import LOAD_ERRORS


class HuggingFaceClip:
    """A `CLIPModel` with its processor: images and prompts into the shared, projected CLIP space."""

    def __init__(self, name: str, model: CLIPModel, processor: CLIPProcessor, device: torch.device):
        self.name = name
        self.model = model
        self.processor = processor
        self.device = device

    @torch.no_grad()
    def embed_images(self, images: Sequence[Any]) -> torch.Tensor:
        pixels = self.processor(images=list(images), return_tensors="pt").pixel_values
        vision = self.model.vision_model(pixel_values=pixels.to(self.device, self.model.dtype))
        return self.model.visual_projection(vision.pooler_output).float()

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        inputs = self.processor(text=list(texts), padding=True, truncation=True, return_tensors="pt")
        text = self.model.text_model(
            input_ids=inputs.input_ids.to(self.device), attention_mask=inputs.attention_mask.to(self.device)
        )
        return self.model.text_projection(text.pooler_output).float()


def load_hugging_face_clip(
    model: str, device: torch.device, dtype: torch.dtype, name: str | None = None, revision: str | None = None
) -> HuggingFaceClip:
    """Load a `CLIPModel` and its processor from a hub id or a folder; `name` is how results call it."""
    try:
        clip = CLIPModel.from_pretrained(model, dtype=dtype, revision=revision)
        processor = CLIPProcessor.from_pretrained(model, revision=revision)
    except LOAD_ERRORS as error:
        raise BackendError(
            f"Could not load the CLIP {model!r} for evaluation ({short_reason(error)}). Download it where the hub is "
            "reachable or pass a local folder with --clip; --clip tiny runs offline."
        ) from None
    return HuggingFaceClip(name or model, clip.to(device).eval(), processor, device)


class ClipEvaluator:
    """Any CLIP checkpoint; the default is the paper's evaluator."""

    name = "clip"
    default_model = "openai/clip-vit-large-patch14"
    loads_any_clip = True
    """`--clip` given a hub id or folder (no evaluator's name) loads it with this evaluator."""

    def load(
        self, model: str, device: torch.device, dtype: torch.dtype, revision: str | None = None
    ) -> HuggingFaceClip:
        return load_hugging_face_clip(model, device, dtype, revision=revision)
