"""A tiny random BLIP-2 of the real architecture (vision tower, Q-Former, OPT language model), built locally.

It answers nonsense, but it runs every line of the `blip2` oracle's code path (processor, image tokens,
generation, decoding) in tests, loaded through the same `from_pretrained` as `Salesforce/blip2-flan-t5-xl`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2Processor,
    BlipImageProcessor,
    OPTConfig,
)

from conceptlab.engine.io.cache import cached_build
from conceptlab.plugins.tiny.world import build_tokenizer

SEED = 7
IMAGE_SIZE = 32
QUERY_TOKENS = 4


def save_tiny_blip2(folder: Path) -> None:
    tokenizer = build_tokenizer()
    processor = Blip2Processor(
        BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}), tokenizer, num_query_tokens=QUERY_TOKENS
    )
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    text_config = OPTConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        ffn_dim=64,
        num_attention_heads=4,
        max_position_embeddings=128,
        word_embed_proj_dim=32,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = Blip2Config(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": IMAGE_SIZE,
            "patch_size": 8,
        },
        qformer_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 64,
            "encoder_hidden_size": 32,
            "vocab_size": 100,
        },
        text_config=text_config.to_dict(),
        num_query_tokens=QUERY_TOKENS,
        image_token_index=image_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        model = Blip2ForConditionalGeneration(config).eval()
    model.generation_config.max_new_tokens = 6
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


def tiny_blip2_folder() -> Path:
    """The cached tiny BLIP-2, rebuilt when this recipe or the tiny world's tokenizer changes."""
    from conceptlab.plugins.tiny import clip_vocab, world

    recipe = (Path(__file__), Path(world.__file__), Path(clip_vocab.__file__))  # its tokenizer's
    return cached_build("tiny-blip2", recipe, save_tiny_blip2)
