"""Stock Kandinsky prior pipelines built from diffusers' own fast-test components, saved and reloaded.

The components are those of diffusers' `tests/pipelines/kandinsky/test_kandinsky_prior.py` and
`tests/pipelines/kandinsky2_2/test_kandinsky_prior.py` (`Dummies` / `get_dummy_components`): a 32-wide CLIP text
encoder with the legacy `eos_token_id=2`, a one-layer `PriorTransformer`, a CLIP image encoder and an
`UnCLIPScheduler`. Their tokenizer, `hf-internal-testing/tiny-random-clip`, is on the hub, so a CLIP BPE tokenizer
of the same kind is built here: bytes, a few whole words, and the special tokens last, as in CLIP (end-of-text has
the largest id until a token is added, which is what makes the legacy pooling wrong afterwards).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import PriorTransformer, UnCLIPScheduler
from torch import nn
from transformers import (
    CLIPImageProcessor,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from conceptlab.plugins.tiny.clip_vocab import bytes_to_unicode
from conceptlab.plugins.tiny.fast_test_configs import fast_test_clip_text_config

HIDDEN = 32
WORDS = ("a", "photo", "of", "plush", "toy", "pet", "horse", "and")


def build_tokenizer() -> CLIPTokenizer:
    byte_chars = list(bytes_to_unicode().values())
    vocab_list = byte_chars + [c + "</w>" for c in byte_chars]
    merges: list[tuple[str, str]] = []
    for word in WORDS:
        pieces = [*word[:-1], word[-1] + "</w>"]
        while len(pieces) > 1:
            merges.append((pieces[0], pieces[1]))
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
            if pieces[0] not in vocab_list:
                vocab_list.append(pieces[0])
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab_list)}, merges=merges, model_max_length=77)


def _text_encoder() -> CLIPTextModelWithProjection:
    torch.manual_seed(0)
    return CLIPTextModelWithProjection(fast_test_clip_text_config(1000, hidden_size=HIDDEN, projection_dim=HIDDEN))


def _prior() -> PriorTransformer:
    torch.manual_seed(0)
    model = PriorTransformer(num_attention_heads=2, attention_head_dim=12, embedding_dim=HIDDEN, num_layers=1)
    model.clip_std = nn.Parameter(torch.ones(model.clip_std.shape))  # diffusers' tests do this too: 0 std gives 0s
    return model


def _image_encoder() -> CLIPVisionModelWithProjection:
    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=HIDDEN,
        image_size=224,
        projection_dim=HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_channels=3,
        num_hidden_layers=5,
        patch_size=14,
    )
    return CLIPVisionModelWithProjection(config)


def _image_processor() -> CLIPImageProcessor:
    return CLIPImageProcessor(
        crop_size=224,
        do_center_crop=True,
        do_normalize=True,
        do_resize=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
        resample=3,
        size=224,
    )


def stock_prior_folder(pipeline_class: type, folder: Path) -> Path:
    """`pipeline_class` built from the fast-test components and written with `save_pretrained` into `folder`."""
    pipeline = pipeline_class(
        prior=_prior(),
        image_encoder=_image_encoder(),
        text_encoder=_text_encoder(),
        tokenizer=build_tokenizer(),
        scheduler=UnCLIPScheduler(
            variance_type="fixed_small_log",
            prediction_type="sample",
            num_train_timesteps=1000,
            clip_sample=True,
            clip_sample_range=10.0,
        ),
        image_processor=_image_processor(),
    )
    pipeline.save_pretrained(folder, safe_serialization=True)
    return folder
