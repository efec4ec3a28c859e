"""A tiny random Qwen2.5-VL of the real architecture (windowed vision tower, M-RoPE language model), built locally.

Its byte-level BPE tokenizer is trained here with the `tokenizers` library on a few sentences (the chat template's
words, the question, the tiny world's category members), wrapped in transformers' `Qwen2Tokenizer` with Qwen's
special tokens; its image processor is Qwen2-VL's with 56 x 56 pixels at least and at most (4 patches of 14 merged
into one image token per 2 x 2). It answers nonsense, but it runs every line of the `qwen2.5-vl` oracle (chat
template, image tokens, generation, decoding), loaded through the same `from_pretrained` as the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Tokenizer,
    Qwen2VLImageProcessorPil,
)

from conceptlab.engine.io.cache import cached_build
from conceptlab.plugins.tiny.world import CATEGORY_MEMBERS

SEED = 13
VOCAB_SIZE = 400
SIDE = 56
"""The image processor's min and max pixels are SIDE x SIDE: every preview becomes 2 x 2 merged patches of 14."""
SPECIAL = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)
"""Qwen2.5-VL-Instruct's `chat_template.json` (the template `apply_chat_template` uses for its processor)."""


def _corpus() -> list[str]:
    members = [word for words in CATEGORY_MEMBERS.values() for word in words]
    return [
        "system You are a helpful assistant. user assistant",
        "Answer with a single word. What kind of pet is this? What kind of plant is in this photo?",
        " ".join([*CATEGORY_MEMBERS, *members]),
    ]


def build_tokenizer() -> Qwen2Tokenizer:
    """A byte-level BPE trained on `_corpus()`, as `Qwen2Tokenizer` (Qwen's pre-tokenizer and special tokens)."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=list(SPECIAL),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer)
    trained = json.loads(bpe.to_str())["model"]
    tokenizer = Qwen2Tokenizer(vocab=trained["vocab"], merges=[tuple(pair) for pair in trained["merges"]])
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL[1:])})
    return tokenizer


def save_tiny_qwen_vl(folder: Path) -> None:
    tokenizer = build_tokenizer()
    token = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 512,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]},
            "bos_token_id": None,
            "eos_token_id": token("<|im_end|>"),
            "pad_token_id": token("<|endoftext|>"),
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 32,
            "num_heads": 4,
            "out_hidden_size": 32,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [1],
        },
        image_token_id=token("<|image_pad|>"),
        video_token_id=token("<|video_pad|>"),
        vision_start_token_id=token("<|vision_start|>"),
        vision_end_token_id=token("<|vision_end|>"),
    )
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = token("<|im_end|>")
    model.generation_config.pad_token_id = token("<|endoftext|>")
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=SIDE * SIDE, max_pixels=SIDE * SIDE)
    image_processor.save_pretrained(folder)
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}), encoding="utf-8")


def tiny_qwen_vl_folder() -> Path:
    """The cached tiny Qwen2.5-VL, rebuilt when this recipe or the tiny world's words change."""
    from conceptlab.plugins.tiny import world

    return cached_build("tiny-qwen-vl", (Path(__file__), Path(world.__file__)), save_tiny_qwen_vl)
