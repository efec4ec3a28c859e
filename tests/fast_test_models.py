"""Model folders as a user brings them: built with diffusers' and transformers' own classes, saved with
`save_pretrained`, never through conceptlab's backends.

The component configs are those of diffusers' fast tests (`tests/pipelines/kandinsky2_2/test_kandinsky_prior.py`
and `test_kandinsky.py`: 32-wide CLIP text and vision encoders of 5 layers, a one-layer `PriorTransformer`, a
two-level UNet with `image_proj` and a two-level MoVQ). Two changes, because no hub is reachable: the tokenizer is
built locally (those tests download `hf-internal-testing/tiny-random-clip`), and the evaluating CLIP is a
`CLIPModel` made of the same text and vision configs. Weights are random from fixed seeds.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    DDIMScheduler,
    KandinskyV22Pipeline,
    KandinskyV22PriorPipeline,
    PriorTransformer,
    UnCLIPScheduler,
    UNet2DConditionModel,
    VQModel,
)
from stock_priors import build_tokenizer  # byte-level BPE within the fast tests' 1,000-token vocabulary
from torch import nn
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    CLIPTextModelWithProjection,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from conceptlab.plugins.tiny.fast_test_configs import fast_test_clip_text_config

WIDTH = 32
TEXT_CONFIG = fast_test_clip_text_config(1000, hidden_size=WIDTH, projection_dim=WIDTH)
VISION_CONFIG = {
    "hidden_size": WIDTH,
    "image_size": 224,
    "projection_dim": WIDTH,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_channels": 3,
    "num_hidden_layers": 5,
    "patch_size": 14,
}


def image_processor() -> CLIPImageProcessor:
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


def save_prior(folder: Path) -> None:
    """A Kandinsky 2.2 prior pipeline (text encoder, prior, image encoder, scheduler) as diffusers' tests make it."""
    tokenizer = build_tokenizer()
    assert len(tokenizer) <= TEXT_CONFIG.vocab_size
    torch.manual_seed(0)
    text_encoder = CLIPTextModelWithProjection(TEXT_CONFIG)
    torch.manual_seed(0)
    prior = PriorTransformer(num_attention_heads=2, attention_head_dim=12, embedding_dim=WIDTH, num_layers=1)
    prior.clip_std = nn.Parameter(torch.ones(prior.clip_std.shape))
    torch.manual_seed(0)
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**VISION_CONFIG))
    scheduler = UnCLIPScheduler(
        variance_type="fixed_small_log",
        prediction_type="sample",
        num_train_timesteps=1000,
        clip_sample=True,
        clip_sample_range=10.0,
    )
    pipeline = KandinskyV22PriorPipeline(
        prior=prior,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        image_processor=image_processor(),
    )
    pipeline.save_pretrained(folder)


def save_decoder(folder: Path) -> None:
    """A Kandinsky 2.2 decoder pipeline (UNet, MoVQ, DDIM) as diffusers' fast tests configure it."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        in_channels=4,
        out_channels=8,
        addition_embed_type="image",
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        block_out_channels=(32, 64),
        layers_per_block=1,
        encoder_hid_dim=WIDTH,
        encoder_hid_dim_type="image_proj",
        cross_attention_dim=32,
        attention_head_dim=4,
        resnet_time_scale_shift="scale_shift",
        class_embed_type=None,
    )
    torch.manual_seed(0)
    movq = VQModel(
        block_out_channels=[32, 64],
        down_block_types=["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
        in_channels=3,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        norm_type="spatial",
        num_vq_embeddings=12,
        out_channels=3,
        up_block_types=["AttnUpDecoderBlock2D", "UpDecoderBlock2D"],
        vq_embed_dim=4,
    )
    scheduler = DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
        thresholding=False,
    )
    KandinskyV22Pipeline(unet=unet, scheduler=scheduler, movq=movq).save_pretrained(folder)


def save_clip(folder: Path) -> None:
    """An evaluating `CLIPModel` and its processor, of the same text and vision configs."""
    torch.manual_seed(0)
    config = CLIPConfig(text_config=TEXT_CONFIG.to_dict(), vision_config=VISION_CONFIG, projection_dim=WIDTH)
    CLIPModel(config).save_pretrained(folder)
    CLIPProcessor(image_processor=image_processor(), tokenizer=build_tokenizer()).save_pretrained(folder)
