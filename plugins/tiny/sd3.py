"""A tiny Stable Diffusion 3 pipeline from diffusers' own fast-test component configs, built once and cached.

The configs are those of diffusers' `StableDiffusion3PipelineFastTests.get_dummy_components`
(tests/pipelines/stable_diffusion_3/test_pipeline_stable_diffusion_3.py): a one-layer `SD3Transformer2DModel`, a
one-level VAE with SD3's shift and scale, two 32-wide CLIP text encoders and the flow-matching Euler scheduler.
Differences, because the hub cannot be reached here: both CLIP tokenizers are the tiny world's locally built one,
and the T5 encoder (diffusers loads `hf-internal-testing/tiny-random-t5`) is built from a config of the same sizes,
with a T5 tokenizer (Unigram) trained here on a few sentences with the `tokenizers` library. Every weight is random;
images are 32 px.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import CLIPTextModelWithProjection, T5Config, T5EncoderModel, T5Tokenizer

from conceptlab.engine.io.cache import cached_build
from conceptlab.plugins.tiny.fast_test_configs import fast_test_clip_text_config
from conceptlab.plugins.tiny.world import CATEGORY_MEMBERS, build_tokenizer

T5_VOCAB_SIZE = 200


def build_t5_tokenizer() -> T5Tokenizer:
    """A Unigram T5 tokenizer (`<pad>`, `</s>`, `<unk>` first, as T5's) trained on the prompts' words."""
    corpus = [
        "a photo of a new type of pet, a painting in the style of",
        " ".join([*CATEGORY_MEMBERS, *(word for words in CATEGORY_MEMBERS.values() for word in words)]),
    ]
    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=T5_VOCAB_SIZE, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    unigram.train_from_iterator(corpus, trainer)
    vocab = [(piece, score) for piece, score in json.loads(unigram.to_str())["model"]["vocab"]]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def build_t5(vocab_size: int) -> T5EncoderModel:
    """An encoder of `hf-internal-testing/tiny-random-t5`'s sizes (32 wide, 4 heads of 8, feed-forward 37)."""
    config = T5Config(
        vocab_size=vocab_size,
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=5,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(0)
    return T5EncoderModel(config).eval()


def build_tiny_sd3() -> StableDiffusion3Pipeline:
    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=1,
        in_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=32,
        pooled_projection_dim=64,
        out_channels=4,
    )
    tokenizer = build_tokenizer()
    clip_config = fast_test_clip_text_config(len(tokenizer), hidden_act="gelu")
    torch.manual_seed(0)
    text_encoder = CLIPTextModelWithProjection(clip_config)
    torch.manual_seed(0)
    text_encoder_2 = CLIPTextModelWithProjection(clip_config)
    torch.manual_seed(0)
    vae = AutoencoderKL(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(4,),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    tokenizer_3 = build_t5_tokenizer()
    return StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder.eval(),
        text_encoder_2=text_encoder_2.eval(),
        text_encoder_3=build_t5(len(tokenizer_3)),
        tokenizer=tokenizer,
        tokenizer_2=build_tokenizer(),
        tokenizer_3=tokenizer_3,
        transformer=transformer.eval(),
        vae=vae.eval(),
    )


def _save(folder: Path) -> None:
    build_tiny_sd3().save_pretrained(folder, safe_serialization=True)


def tiny_sd3_folder() -> Path:
    """The cached tiny SD3 pipeline folder, built on first use in a second or two."""
    from conceptlab.plugins.tiny import fast_test_configs, world

    return cached_build("tiny-sd3", (Path(__file__), Path(fast_test_configs.__file__), Path(world.__file__)), _save)
