"""Build the tiny decoder: a Kandinsky 2.2 decoder (image-conditioned UNet + MoVQ) trained to paint the tiny world.

Decoding the tiny prior's image embedding of a word paints that word's tiny-world picture (the colour pattern of
`world.synthetic_picture`); an embedding between words paints a blend of their patterns, each weighted by how
close the embedding is to that word's (a softmax of cosines, `painted_patterns`). It runs through diffusers' own
`KandinskyV22Pipeline` and loads through the same `from_pretrained` path as the real decoder. Training takes about
90 s of one CPU core, on first use:

* MoVQ's decoder learns to turn a latent (the colour pattern enlarged to the latent's size) into the picture;
* the UNet learns to denoise latents given the tiny prior's outputs for the tiny world's prompts and blends of them;
  one condition in ten is an unconditional one (the zero-image embedding, or the prior's output for ""), so
  classifier-free guidance works. Each target pattern is varied a little, as photos vary, so the conditional and
  unconditional predictions agree once little noise is left and the official guidance (7.5) does not overshoot.

One setting differs from the real decoder's scheduler: the UNet predicts the clean latent (`prediction_type="sample"`,
which diffusers' `DDPMScheduler` supports) rather than the noise, which a CPU minute of training cannot learn well
enough to paint (measured: 1,000 steps, latent error 0.20 predicting noise against 0.04 predicting the sample).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, KandinskyV22Pipeline, KandinskyV22PriorPipeline, UNet2DConditionModel, VQModel

from conceptlab.plugins.tiny.world import (
    CATEGORY_MEMBERS,
    EMBED_DIM,
    IMAGE_SIZE,
    TRAINING_TEMPLATES,
    enlarge_patterns,
    word_pattern,
)

SEED = 2024
LATENT_CHANNELS = 4
OUTPUT_GAIN = 0.05
"""Scales MoVQ's last layer at initialisation: at full gain a random MoVQ clips nearly every pixel to 0 or 255 (the
tests' random 2.1 decoder relies on this); the trained decoder starts from it too."""
LATENT_SIZE = IMAGE_SIZE // 4
LATENT_SCALE = 2.5
"""Latent values are the pattern's colours in [-1, 1] times this: about unit spread, as the noise the UNet removes."""
BATCH = 32
LEARNING_RATE = 3e-3
MOVQ_TRAIN_STEPS = 150
MOVQ_CROP = LATENT_SIZE // 2
"""MoVQ learns on crops of a quarter of the picture: its layers are local, so a quarter of the cost."""
MOVQ_LATENT_NOISE = 0.6
"""MoVQ learns to paint latents with up to this much noise added: the UNet's latents are near a pattern's, not on
it, and a MoVQ shown only exact ones turned a latent error of 0.2 into a picture error of 1.2 (pixels in [-1, 1])."""
UNET_TRAIN_STEPS = 1000
PAINT_SHARPNESS = 20.0
"""The softmax temperature of `painted_patterns`: a word's prior outputs paint its own pattern with weight 0.94 on
average (median 0.99), and an embedding halfway between two words paints about half of each."""
PHOTO_VARIATION = 0.1
"""Each training pattern's colours are moved by this much (standard deviation, colours in [0, 1])."""
BLEND_SHARE = 0.5
UNCONDITIONAL_SHARE = 0.1
PRIOR_STEPS = 5
"""The prior sampling of the official renders and of `sample`."""


def _unet() -> UNet2DConditionModel:
    """The 2.2 UNet: the image embedding enters as extra time embedding and as cross-attention tokens."""
    return UNet2DConditionModel(
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS * 2,  # learned variance, as the real decoder
        addition_embed_type="image",
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        block_out_channels=(16, 32),
        layers_per_block=1,
        encoder_hid_dim=EMBED_DIM,
        encoder_hid_dim_type="image_proj",
        cross_attention_dim=32,
        attention_head_dim=4,
        resnet_time_scale_shift="scale_shift",
        class_embed_type=None,
        norm_num_groups=8,
    )


def _movq(block_out_channels: tuple[int, ...] = (32, 64)) -> VQModel:
    """A MoVQ that shrinks the picture by 2 per extra block (the tests' random 2.1 decoder uses the default, 2x)."""
    levels = len(block_out_channels)
    return VQModel(
        block_out_channels=block_out_channels,  # MoVQ's spatial norm has 32 groups
        down_block_types=(*("DownEncoderBlock2D",) * (levels - 1), "AttnDownEncoderBlock2D"),
        in_channels=3,
        latent_channels=LATENT_CHANNELS,
        layers_per_block=1,
        norm_num_groups=8,
        norm_type="spatial",
        num_vq_embeddings=12,
        out_channels=3,
        up_block_types=("AttnUpDecoderBlock2D", *("UpDecoderBlock2D",) * (levels - 1)),
        vq_embed_dim=LATENT_CHANNELS,
    )


def _scheduler() -> DDPMScheduler:
    """The settings of `kandinsky-community/kandinsky-2-2-decoder`'s scheduler, but predicting the clean sample."""
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        steps_offset=1,
        prediction_type="sample",
        thresholding=False,
    )


def world_words() -> list[str]:
    """The words the decoder learns the prior's outputs of: every category and member of the tiny world."""
    return [word for category, members in CATEGORY_MEMBERS.items() for word in (category, *members)]


def painted_words() -> list[str]:
    """The words whose pictures the decoder paints: the members. A category word paints a blend of its members, as
    a photo of "a pet" shows some pet."""
    return [word for members in CATEGORY_MEMBERS.values() for word in members]


def pattern_latents(patterns: torch.Tensor) -> torch.Tensor:
    """The decoder's latent of `[n, 3, 4, 4]` colour patterns in [0, 1]: enlarged to the latent's size, plus their
    grey, scaled."""
    small = enlarge_patterns(patterns * 2 - 1, LATENT_SIZE)
    return torch.cat([small, small.mean(1, keepdim=True)], dim=1) * LATENT_SCALE


class WordGeometry:
    """Where each member's prior outputs lie, and which blend of member patterns an image embedding paints."""

    def __init__(self, word_embeds: torch.Tensor):
        """`word_embeds`: `[world_words, n, dim]`, the prior's outputs for each word's prompts."""
        painted = [world_words().index(word) for word in painted_words()]
        references = word_embeds[painted].mean(1)
        self.centre = references.mean(0)
        self.directions = F.normalize(references - self.centre, dim=-1)
        self.patterns = torch.stack([word_pattern(word) for word in painted_words()])

    def weights(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """`[n, painted_words]`: a softmax over the centred cosines of each embedding to each member's mean output."""
        cosines = F.normalize(image_embeds - self.centre, dim=-1) @ self.directions.T
        return torch.softmax(PAINT_SHARPNESS * cosines, dim=-1)

    def painted_patterns(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """`[n, 3, 4, 4]`: the colour pattern the decoder learns to paint for each embedding."""
        return torch.einsum("nw,wchk->nchk", self.weights(image_embeds), self.patterns)


def _word_embeds(prior: KandinskyV22PriorPipeline, words: list[str]) -> torch.Tensor:
    """`[words, templates, dim]`: the prior's outputs for each official template with "a" (one seed)."""
    templates = [template for template in TRAINING_TEMPLATES if " a {}" in template]
    prompts = [template.format(word) for word in words for template in templates]
    generator = torch.Generator().manual_seed(SEED)
    embeds = prior(prompts, num_inference_steps=PRIOR_STEPS, generator=generator).image_embeds
    return embeds.reshape(len(words), len(templates), -1)


def _unconditional_embeds(prior: KandinskyV22PriorPipeline) -> torch.Tensor:
    """The decoder's negatives: the zero image's embedding (the official default) and the prior's output for ""."""
    empty = prior([""], num_inference_steps=PRIOR_STEPS, generator=torch.Generator().manual_seed(SEED))
    return torch.cat([prior.get_zero_embed(), empty.image_embeds])


def _train_movq(movq: VQModel, generator: torch.Generator) -> None:
    """MoVQ's decoder learns to paint any colour pattern back from its latent, noisy or not (encoder and codebook
    stay unused)."""
    parameters = [*movq.post_quant_conv.parameters(), *movq.decoder.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE, weight_decay=0.0)
    scale = IMAGE_SIZE // LATENT_SIZE
    for _ in range(MOVQ_TRAIN_STEPS):
        patterns = torch.rand(BATCH // 2, 3, 4, 4, generator=generator)
        top, left = torch.randint(LATENT_SIZE - MOVQ_CROP + 1, (2,), generator=generator).tolist()
        latents = pattern_latents(patterns)[:, :, top : top + MOVQ_CROP, left : left + MOVQ_CROP]
        spread = MOVQ_LATENT_NOISE * torch.rand(len(latents), 1, 1, 1, generator=generator)
        latents = latents + spread * torch.randn(latents.shape, generator=generator)
        pictures = enlarge_patterns(patterns * 2 - 1)
        pictures = pictures[:, :, scale * top : scale * (top + MOVQ_CROP), scale * left : scale * (left + MOVQ_CROP)]
        loss = F.mse_loss(movq.decode(latents, force_not_quantize=True).sample, pictures)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _draw_conditions(word_embeds: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """`[BATCH, dim]` prior outputs of word prompts, half of them blended with another's by a random amount."""
    outputs = word_embeds.flatten(0, 1)
    first, second = (outputs[torch.randint(len(outputs), (BATCH,), generator=generator)] for _ in range(2))
    blended = torch.rand(BATCH, 1, generator=generator) < BLEND_SHARE
    return torch.lerp(first, second, torch.rand(BATCH, 1, generator=generator) * blended)


def _train_unet(unet, scheduler: DDPMScheduler, geometry: WordGeometry, word_embeds, unconditional, generator):
    """Denoise the latent of each condition's painted pattern (varied as photos vary), predicting the clean latent."""
    with torch.no_grad():  # both image-embedding inputs start centred on the words' outputs, so they differ at once
        for layer in (unet.add_embedding.image_proj, unet.encoder_hid_proj.image_embeds):
            layer.bias.copy_(-layer.weight @ geometry.centre)
    alphas = scheduler.alphas_cumprod
    optimizer = torch.optim.AdamW(unet.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, UNET_TRAIN_STEPS)
    for _ in range(UNET_TRAIN_STEPS):
        conditions = _draw_conditions(word_embeds, generator)
        patterns = geometry.painted_patterns(conditions)
        patterns = patterns + PHOTO_VARIATION * torch.randn(patterns.shape, generator=generator)
        latents = pattern_latents(patterns.clamp(0, 1))
        dropped = torch.rand(BATCH, 1, generator=generator) < UNCONDITIONAL_SHARE
        negatives = unconditional[torch.randint(len(unconditional), (BATCH,), generator=generator)]
        conditions = torch.where(dropped, negatives, conditions)
        timesteps = torch.randint(len(alphas), (BATCH,), generator=generator)
        alpha = alphas[timesteps][:, None, None, None]
        noisy = alpha.sqrt() * latents + (1 - alpha).sqrt() * torch.randn(latents.shape, generator=generator)
        predicted = unet(noisy, timesteps, None, added_cond_kwargs={"image_embeds": conditions}).sample
        loss = F.mse_loss(predicted[:, :LATENT_CHANNELS], latents)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()


def build_tiny_decoder_pipeline(world: Path) -> KandinskyV22Pipeline:
    """Train the decoder on the tiny world saved in `world`; deterministic for a given torch version."""
    prior = KandinskyV22PriorPipeline.from_pretrained(world)
    prior.set_progress_bar_config(disable=True)
    words = world_words()
    with torch.no_grad():
        word_embeds = _word_embeds(prior, words)
        unconditional = _unconditional_embeds(prior)
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        unet = _unet()
        movq = _movq((32, 32, 64))  # 4x: a 32 px picture is an 8 x 8 latent
    with torch.no_grad():
        movq.decoder.conv_out.weight.mul_(OUTPUT_GAIN)
    generator = torch.Generator().manual_seed(SEED)
    _train_movq(movq, generator)
    scheduler = _scheduler()
    _train_unet(unet, scheduler, WordGeometry(word_embeds), word_embeds, unconditional, generator)
    return KandinskyV22Pipeline(unet=unet.eval(), scheduler=scheduler, movq=movq.eval())


def save_tiny_decoder(folder: Path, world: Path) -> None:
    build_tiny_decoder_pipeline(world).save_pretrained(folder)
