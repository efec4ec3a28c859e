"""The CLIP text encoder config of diffusers' own fast pipeline tests, shared by the tiny models built from them."""

from __future__ import annotations

from typing import Any

from transformers import CLIPTextConfig


def fast_test_clip_text_config(
    vocab_size: int, hidden_size: int = 32, projection_dim: int = 32, **overrides: Any
) -> CLIPTextConfig:
    """5 layers, 4 heads, feed-forward 37 wide, and the legacy bos / eos / pad ids 0 / 2 / 1, as in diffusers' fast
    tests of the Stable Diffusion, SDXL, SD3 and Kandinsky pipelines; `overrides` for what a test changes."""
    return CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=2,
        hidden_size=hidden_size,
        projection_dim=projection_dim,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=5,
        pad_token_id=1,
        vocab_size=vocab_size,
        **overrides,
    )
