"""The tiny evaluating CLIP: the tiny world's trained text encoder and its image encoder joined in a `CLIPModel`.

Its text side tells the tiny world's words apart, so prompt-to-prompt metrics mean something; its image side is
the tiny world's (random) image encoder. It is saved with `save_pretrained` and loaded like any CLIP checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
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

from conceptlab.plugins.tiny import cache_root, tiny_world_folder
from conceptlab.plugins.tiny_world import build_tokenizer


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
    """Built once per tiny world (a second or two) into the conceptlab cache, written atomically."""
    world = tiny_world_folder()
    recipe = hashlib.sha256(Path(__file__).read_bytes() + world.name.encode()).hexdigest()[:12]
    folder = cache_root() / f"tiny-clip-{recipe}"
    if (folder / "config.json").exists():
        return folder
    staging = Path(tempfile.mkdtemp(prefix=".tiny-clip-", dir=folder.parent))
    try:
        with torch.random.fork_rng():
            model, processor = build_tiny_clip(world)
        model.save_pretrained(staging, safe_serialization=True)
        processor.save_pretrained(staging)
        os.replace(staging, folder)
    except OSError:
        if not (folder / "config.json").exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
