"""A tiny Kandinsky 2.1 decoder for the tests: M-CLIP text encoder with its XLM-R tokenizer, text-and-image UNet,
MoVQ. Saved with `save_pretrained` and loaded by the real `kandinsky-2.1` backend from that folder, as a user's
`--decoder FOLDER` is.

The 2.1 decoder, unlike 2.2's, reads a text prompt of its own (the official code leaves it empty). Its tokenizer is
XLM-RoBERTa's sentencepiece; no hub is reachable here, so a tiny unigram vocabulary is built locally and wrapped in
transformers' XLM-R tokenizer class. Weights are random from a fixed seed; the layer sizes follow diffusers' own
Kandinsky 2.1 pipeline tests, and the UNet takes image embeddings as wide as the tiny prior makes.

It stays a test builder, not a tiny model in `plugins/tiny/`: its weights are random (it paints nothing a user could
read, unlike the trained 2.2 decoder there), no command reaches it (the `tiny` backend is 2.2-shaped), and its only
job is to drive the real `kandinsky-2.1` backend's own code (a `--decoder FOLDER`, M-CLIP constraints) in tests.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, KandinskyPipeline, UNet2DConditionModel
from diffusers.pipelines.kandinsky.text_encoder import MCLIPConfig, MultilingualCLIP
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import XLMRobertaTokenizerFast

from conceptlab.plugins.tiny.decoder import LATENT_CHANNELS, OUTPUT_GAIN, SEED, _movq
from conceptlab.plugins.tiny.world import EMBED_DIM, _words

TEXT_WIDTH = 32
"""M-CLIP's output width (1024 in the real decoder); the UNet's cross-attention is as wide as the image embeds."""
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


def build_mclip_tokenizer() -> XLMRobertaTokenizerFast:
    """XLM-R's layout (`<s>` 0, `<pad>` 1, `</s>` 2, `<unk>` 3, sentencepiece `▁` word starts), a tiny vocabulary."""
    letters = sorted({character for word in _words() for character in word})
    pieces = [(token, 0.0) for token in SPECIALS]
    pieces += [(f"▁{word}", -2.0) for word in _words()] + [("▁", -3.0)]
    pieces += [(letter, -5.0) for letter in letters] + [("<mask>", 0.0)]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=SPECIALS.index("<unk>")))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return XLMRobertaTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=77,
    )


def _text_encoder(vocab_size: int) -> MultilingualCLIP:
    config = MCLIPConfig(
        transformerDimSize=TEXT_WIDTH,
        imageDimSize=EMBED_DIM,  # its pooled projection meets the image embedding, as 768 meets 768 in 2.1
        hidden_size=TEXT_WIDTH,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=vocab_size,
        max_position_embeddings=80,
        pad_token_id=SPECIALS.index("<pad>"),
        bos_token_id=0,
        eos_token_id=2,
    )
    return MultilingualCLIP(config).eval()


def _unet() -> UNet2DConditionModel:
    """The 2.1 UNet: text (M-CLIP) and image embeddings enter as time embedding and as cross-attention tokens."""
    return UNet2DConditionModel(
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS * 2,
        addition_embed_type="text_image",
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        block_out_channels=(16, 32),
        layers_per_block=1,
        encoder_hid_dim=TEXT_WIDTH,
        encoder_hid_dim_type="text_image_proj",
        cross_attention_dim=EMBED_DIM,
        attention_head_dim=4,
        resnet_time_scale_shift="scale_shift",
        class_embed_type=None,
        norm_num_groups=8,
    )


def _scheduler() -> DDIMScheduler:
    """The settings of `kandinsky-community/kandinsky-2-1`'s scheduler."""
    return DDIMScheduler(
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


def build_tiny_decoder_21_pipeline() -> KandinskyPipeline:
    """Deterministic: the same weights on every machine for a given torch version."""
    tokenizer = build_mclip_tokenizer()
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        text_encoder, unet, movq = _text_encoder(len(tokenizer)), _unet(), _movq()
    with torch.no_grad():
        movq.decoder.conv_out.weight.mul_(OUTPUT_GAIN)
    return KandinskyPipeline(
        text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=_scheduler(), movq=movq
    )
