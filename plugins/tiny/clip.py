"""The tiny evaluating CLIP: the tiny world's trained text encoder and its image encoder joined in a `CLIPModel`.

Its text side tells the tiny world's words apart, so prompt-to-prompt metrics mean something; its image side is
the tiny world's (random) image encoder. It is saved with `save_pretrained` and loaded like any CLIP checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    CLIPTextModelWithProjection,
    CLIPVisionModelWithProjection,
)

from conceptlab.engine.io.cache import cached_build
from conceptlab.plugins.clip import HuggingFaceClip, load_hugging_face_clip
from conceptlab.plugins.tiny import TINY
from conceptlab.plugins.tiny.backend import tiny_world_folder, tiny_world_recipe
from conceptlab.plugins.tiny.world import build_tokenizer


def build_tiny_clip(world: Path) -> tuple[CLIPModel, CLIPProcessor]:
    """Join the tiny world's `text_encoder` and `image_encoder` (same projection width) into one `CLIPModel`."""
    text = CLIPTextModelWithProjection.from_pretrained(world / "text_encoder")
    vision = CLIPVisionModelWithProjection.from_pretrained(world / "image_encoder")
    config = CLIPConfig(
        text_config=text.config.to_dict(),
        vision_config=vision.config.to_dict(),
        projection_dim=text.config.projection_dim,
    )
    model = CLIPModel(config)
    missing, unexpected = model.load_state_dict({**text.state_dict(), **vision.state_dict()}, strict=False)
    if set(missing) - {"logit_scale"} or unexpected:
        raise RuntimeError(f"tiny CLIP weights do not fit: missing {missing}, unexpected {unexpected}")
    image_processor = CLIPImageProcessor.from_pretrained(world / "image_processor")
    return model.eval(), CLIPProcessor(image_processor=image_processor, tokenizer=build_tokenizer())


def tiny_clip_folder() -> Path:
    """Built once per tiny world (a second or two) into the conceptlab cache."""
    world = tiny_world_folder()

    def build(folder: Path) -> None:
        model, processor = build_tiny_clip(world)
        model.save_pretrained(folder, safe_serialization=True)
        processor.save_pretrained(folder)

    return cached_build("tiny-clip", (Path(__file__), *tiny_world_recipe()), build)


class TinyClipEvaluator:
    """The `tiny` evaluator: the tiny CLIP, loaded through `from_pretrained` like any CLIP checkpoint."""

    name = TINY
    default_model = TINY

    def load(
        self, model: str, device: torch.device, dtype: torch.dtype, revision: str | None = None
    ) -> HuggingFaceClip:
        folder = str(tiny_clip_folder()) if model == TINY else model
        return load_hugging_face_clip(folder, device, dtype, name=model, revision=revision)
