"""Build the tiny world: small models of the real Kandinsky prior architectures that behave like them.

Random weights alone make a useless test bed (see DESIGN.md): a random CLIP text encoder maps every prompt to
nearly the same direction and a fresh `PriorTransformer` outputs a constant. So the tiny world is *trained*, in a
few seconds on a CPU, to have the properties the method depends on:

* the text encoder sends "a photo of a {word}" close to a fixed direction per word, where members of a category
  share part of the category's direction (cat ~ pet), so different words sit well apart;
* the prior maps a prompt's text embedding to an image embedding along the same direction plus a fixed offset
  (CLIP's modality gap), so text-image cosines sit near 0.3 as on real models and the 0.2 / 0.28 clamps matter;
* the image encoder (a real `CLIPVisionModelWithProjection`) shares that space: it is trained to map the tiny
  world's "photo" of a word (`synthetic_picture`: a smooth colour pattern of its own, with per-photo noise) to the
  image embedding of "a photo of a {word}", so pictures of a cat and of a guitar are told apart by their embeddings
  (the random decoder's renders are not pictures of anything, so their embeddings stay arbitrary).

Everything is deterministic for a given seed and written with `save_pretrained`, so it is loaded by the same
`from_pretrained` code as a real model.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import KandinskyV22PriorPipeline, PriorTransformer, UnCLIPScheduler
from PIL import Image
from transformers import (
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from conceptlab.engine.models.backend import PriorStack
from conceptlab.engine.training.templates import OBJECT_TEMPLATES, TEXTUAL_INVERSION_OBJECT_TEMPLATES
from conceptlab.plugins.oracles.clip_zeroshot import image_embeds
from conceptlab.plugins.tiny.clip_vocab import clip_vocab_and_merges

EMBED_DIM = 64
SEED = 1234
TEXT_TRAIN_STEPS = 300
PRIOR_TRAIN_STEPS = 500
VISION_TRAIN_STEPS = 400
IMAGE_SIZE = 32
PICTURE_NOISE = 0.08
PATTERN_VARIATION = 0.1
"""How much the image encoder sees a word's colours vary (standard deviation, colours in [0, 1]), so that it knows
the tiny decoder's renders, which are near a word's picture but not on it."""
BATCH = 32
MEMBER_SHARE = 0.7
"""Cosine between a member's direction and its category's (cat vs pet); members of one category share 0.49."""
MODALITY_GAP = 4.0
"""Norm of the fixed offset added to a unit text direction to make its image embedding: ideally a word's image and
text embeddings then meet at cosine 1/sqrt(1+4^2) = 0.24; the trained models give 0.31-0.37."""

CATEGORY_MEMBERS: dict[str, tuple[str, ...]] = {
    "pet": ("cat", "dog", "hamster", "rabbit", "parrot", "goldfish", "turtle", "ferret"),
    "plant": ("cactus", "fern", "tree", "flower", "rose", "moss", "bamboo", "ivy"),
    "fruit": ("apple", "banana", "orange", "mango", "grape", "pear", "cherry", "lemon"),
    "furniture": ("chair", "table", "sofa", "bed", "desk", "lamp", "shelf", "stool"),
    "musical instrument": ("guitar", "piano", "violin", "drum", "flute", "trumpet", "harp", "cello"),
    "animal": ("lobster", "crab", "lion", "zebra", "owl", "frog", "snail", "whale"),
}
"""Built-in categories of the tiny world and their known members (also what its oracle and metrics know)."""

TRAINING_TEMPLATES: tuple[str, ...] = tuple(dict.fromkeys(OBJECT_TEMPLATES))
"""The prior learns the official templates (without their repeats), as the real prior knows such captions."""
VOCABULARY_TEMPLATES: tuple[str, ...] = TEXTUAL_INVERSION_OBJECT_TEMPLATES + TRAINING_TEMPLATES
"""The tokenizer knows the words of both template sets `--templates` offers."""
PHOTO_TEMPLATE = TEXTUAL_INVERSION_OBJECT_TEMPLATES[0]
"""'a photo of a {}': what a photo of a word stands for."""


def _words() -> list[str]:
    """Every whole word of the tiny world: templates' words, categories and members."""
    words: set[str] = set()
    for template in VOCABULARY_TEMPLATES:
        words.update(re.findall(r"[a-z]+", template.lower()))
    for category, members in CATEGORY_MEMBERS.items():
        words.update(category.split())
        words.update(members)
    return sorted(w.lower() for w in words)


def build_tokenizer() -> CLIPTokenizer:
    """The real CLIP tokenizer (OpenAI's BPE vocabulary, from the `open_clip_torch` wheel), built locally.

    Token ids, `<|endoftext|>` = 49407, and the id a new placeholder gets (49408) are those of the Kandinsky priors;
    the padding token is `<|endoftext|>` as in `kandinsky-2-2-prior`'s tokenizer (2.1's pads with "!")."""
    vocab, merges = clip_vocab_and_merges()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), pad_token="<|endoftext|>", model_max_length=77)


def _text_model(vocab_size: int) -> CLIPTextModelWithProjection:
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=EMBED_DIM,
        intermediate_size=2 * EMBED_DIM,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=EMBED_DIM,
        max_position_embeddings=77,
        # The legacy ids of the published kandinsky-2-1-prior and -2-2-prior text encoder configs: with
        # eos_token_id 2, transformers pools at the largest token id (see engine/prior/tokens.py).
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
    )
    return CLIPTextModelWithProjection(config)


def _vision_model() -> CLIPVisionModelWithProjection:
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=EMBED_DIM,
    )
    return CLIPVisionModelWithProjection(config)


def _word_directions(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A unit direction per word; members lean towards their category's direction."""

    def random_unit() -> torch.Tensor:
        return F.normalize(torch.randn(EMBED_DIM, generator=generator), dim=0)

    directions: dict[str, torch.Tensor] = {}
    for category, members in CATEGORY_MEMBERS.items():
        directions[category] = random_unit()
        for member in members:
            mixed = MEMBER_SHARE * directions[category] + (1 - MEMBER_SHARE**2) ** 0.5 * random_unit()
            directions[member] = F.normalize(mixed, dim=0)
    directions[""] = random_unit()
    return directions


def _modality_gap(directions: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
    """The fixed offset from a text direction to its image embedding: random, but orthogonal to every word's
    direction. A gap that leans towards some words made every photo's image embedding closest to those words' text
    (clip-zeroshot named "parrot" for 6 of the 8 pets' own photos); orthogonal, a photo is closest to its own word."""
    basis = torch.linalg.qr(torch.stack(list(directions.values())).T).Q
    offset = torch.randn(EMBED_DIM, generator=generator)
    return F.normalize(offset - basis @ (basis.T @ offset), dim=0) * MODALITY_GAP


def _encode(
    tokenizer: CLIPTokenizer,
    text_encoder: CLIPTextModelWithProjection,
    prompts: list[str],
    padding="max_length",
):
    inputs = tokenizer(prompts, padding=padding, max_length=77, truncation=True, return_tensors="pt")
    output = text_encoder(inputs.input_ids)
    return output.text_embeds, output.last_hidden_state, inputs.attention_mask.bool()


def _training_prompts(directions: dict[str, torch.Tensor]) -> tuple[list[str], torch.Tensor]:
    prompts, targets = [], []
    for template, word in itertools.product(TRAINING_TEMPLATES, [w for w in directions if w]):
        prompts.append(template.format(word))
        targets.append(directions[word])
    prompts.append("")
    targets.append(directions[""])
    return prompts, torch.stack(targets)


class _UsedRows(torch.nn.Module):
    """A token embedding that holds only the rows of the ids in use, indexed through a vocabulary-wide map.

    The real vocabulary has 49,408 rows and the tiny world's prompts use about a hundred: training the whole table
    made every step's gradient and AdamW update vocabulary-wide (the text encoder trained 3.6x slower). Rows that no
    prompt uses get no gradient, so AdamW would leave them as they are anyway: the result is the same."""

    def __init__(self, embedding: torch.nn.Embedding, used: torch.Tensor):
        super().__init__()
        self.rows = torch.nn.Parameter(embedding.weight.detach()[used].clone())
        self.register_buffer("index", torch.zeros(embedding.num_embeddings, dtype=torch.long))
        self.index[used] = torch.arange(len(used))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(self.index[input_ids], self.rows)


def _train_text_encoder(tokenizer, text_encoder, directions, generator: torch.Generator) -> None:
    """Pull each prompt's pooled, projected output towards its word's direction."""
    prompts, targets = _training_prompts(directions)
    # Causal attention: padding to the longest prompt gives the same pooled output as padding to 77, faster.
    ids = tokenizer(prompts, padding="longest", return_tensors="pt").input_ids
    embeddings = text_encoder.text_model.embeddings
    full, used = embeddings.token_embedding, torch.unique(ids)
    embeddings.token_embedding = _UsedRows(full, used)
    optimizer = torch.optim.AdamW(text_encoder.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(TEXT_TRAIN_STEPS):
        batch = torch.randint(len(prompts), (BATCH,), generator=generator)
        loss = (1 - F.cosine_similarity(text_encoder(ids[batch]).text_embeds, targets[batch], dim=-1)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        full.weight[used] = embeddings.token_embedding.rows
    embeddings.token_embedding = full


def image_embedding_for(text_embeds: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
    """The tiny world's 'true' image embedding of a text embedding: its direction plus the modality gap."""
    return F.normalize(F.normalize(text_embeds, dim=-1) + gap, dim=-1) * 10.0


def _train_prior(prior: PriorTransformer, scheduler: UnCLIPScheduler, conditions, generator) -> None:
    """Train the prior with its own objective (predict the clean sample) on prompt -> image embedding pairs."""
    text_embeds, hidden, mask, images = conditions
    mean, std = images.mean(0, keepdim=True), images.std(0, keepdim=True)
    prior.clip_mean.data, prior.clip_std.data = mean, std
    prior.clip_mean.requires_grad_(False)
    prior.clip_std.requires_grad_(False)
    targets = (images - mean) / std
    alphas = scheduler.alphas_cumprod
    unconditional = len(text_embeds) - 1  # the empty prompt is last
    optimizer = torch.optim.AdamW([p for p in prior.parameters() if p.requires_grad], lr=2e-3, weight_decay=0.0)
    for _ in range(PRIOR_TRAIN_STEPS):
        batch = torch.randint(len(text_embeds) - 1, (BATCH,), generator=generator)
        drop = torch.rand(BATCH, generator=generator) < 0.1
        condition = torch.where(drop, torch.full_like(batch, unconditional), batch)
        timesteps = torch.randint(len(alphas), (BATCH,), generator=generator)
        noise = torch.randn(BATCH, EMBED_DIM, generator=generator)
        alpha = alphas[timesteps].unsqueeze(-1)
        noisy = alpha.sqrt() * targets[batch] + (1 - alpha).sqrt() * noise
        predicted = prior(
            noisy,
            timestep=timesteps,
            proj_embedding=text_embeds[condition],
            encoder_hidden_states=hidden[condition],
            attention_mask=mask[condition],
        ).predicted_image_embedding
        loss = F.mse_loss(predicted, targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def word_pattern(word: str) -> torch.Tensor:
    """`[3, 4, 4]` colours in [0, 1], fixed by the word: what its pictures show, enlarged."""
    word_seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
    return torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(word_seed))[0]


def enlarge_patterns(patterns: torch.Tensor, size: int = IMAGE_SIZE) -> torch.Tensor:
    """`[n, 3, 4, 4]` colour patterns enlarged smoothly (bilinearly) to `[n, 3, size, size]`."""
    return F.interpolate(patterns, size=size, mode="bilinear", align_corners=False)


def synthetic_picture(word: str, variant: int = 0) -> Image.Image:
    """The tiny world's photo of `word`: its own smooth colour pattern (`word_pattern`), plus noise drawn from
    `variant`, so every variant is a different photo of the same thing."""
    noise = torch.randn(3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(variant))
    smooth = enlarge_patterns(word_pattern(word)[None])[0]
    pixels = (smooth + PICTURE_NOISE * noise).clamp(0, 1)
    return Image.fromarray((pixels.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def picture_similarities(stack: PriorStack, images: list[Image.Image], words: list[str]) -> torch.Tensor:
    """`[images, words]`: cosine, in the tiny image encoder's space, of each image to each word's tiny-world photo."""
    return (image_embeds(stack, images) @ image_embeds(stack, [synthetic_picture(word) for word in words]).T).cpu()


def _varied_picture(word: str, generator: torch.Generator) -> Image.Image:
    """A photo of `word` whose colours themselves vary a little (as the tiny decoder's renders of it do)."""
    pattern = word_pattern(word) + PATTERN_VARIATION * torch.randn(3, 4, 4, generator=generator)
    pixels = enlarge_patterns(pattern.clamp(0, 1)[None])[0]
    return Image.fromarray((pixels.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def _train_vision_encoder(vision, processor, word_images: dict[str, torch.Tensor], generator) -> None:
    """Pull the embedding of each word's photos (fresh noise every step; half with varied colours, no noise) towards
    that word's image embedding."""
    words = list(word_images)
    targets = torch.stack([word_images[word] for word in words])
    optimizer = torch.optim.AdamW(vision.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(VISION_TRAIN_STEPS):
        batch = torch.randint(len(words), (BATCH,), generator=generator)
        variants = torch.randint(2**31 - 1, (BATCH,), generator=generator)
        photos = [synthetic_picture(words[i], int(v)) for i, v in zip(batch[: BATCH // 2], variants, strict=False)]
        photos += [_varied_picture(words[i], generator) for i in batch[BATCH // 2 :]]
        embeds = vision(pixel_values=processor(photos, return_tensors="pt").pixel_values).image_embeds
        loss = (1 - F.cosine_similarity(embeds, targets[batch], dim=-1)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def build_tiny_prior_pipeline() -> KandinskyV22PriorPipeline:
    """Build and train the tiny prior stack deterministically (about 30 s on 2 CPU cores)."""
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    tokenizer = build_tokenizer()
    text_encoder = _text_model(len(tokenizer))
    directions = _word_directions(generator)
    _train_text_encoder(tokenizer, text_encoder, directions, generator)

    prompts, _ = _training_prompts(directions)
    with torch.no_grad():
        text_embeds, hidden, mask = _encode(tokenizer, text_encoder, prompts)
    gap = _modality_gap(directions, generator)
    images = image_embedding_for(text_embeds, gap)

    prior = PriorTransformer(
        num_attention_heads=4, attention_head_dim=16, num_layers=2, embedding_dim=EMBED_DIM, num_embeddings=77
    )
    scheduler = UnCLIPScheduler(
        variance_type="fixed_small_log",
        prediction_type="sample",
        num_train_timesteps=1000,
        clip_sample=True,
        clip_sample_range=10.0,
    )
    _train_prior(prior, scheduler, (text_embeds, hidden, mask, images), generator)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, do_center_crop=True
    )
    vision = _vision_model()
    pipeline = KandinskyV22PriorPipeline(
        prior=prior.eval(),
        image_encoder=vision,
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        scheduler=scheduler,
        image_processor=image_processor,
    )
    words = [word for word in directions if word]
    targets = _photo_targets(pipeline, words)
    _train_vision_encoder(vision, image_processor, targets, torch.Generator().manual_seed(SEED + 1))
    vision.eval()
    return pipeline


def _photo_targets(pipeline: KandinskyV22PriorPipeline, words: list[str]) -> dict[str, torch.Tensor]:
    """What a photo of each word should embed to: the prior's own output for "a photo of a {word}", averaged over
    a few seeds, with the sampling that training uses (5 steps, guidance 4: the tiny prior's outputs are most
    distinct there)."""
    pipeline.set_progress_bar_config(disable=True)
    prompts = [PHOTO_TEMPLATE.format(word) for word in words]
    with torch.no_grad():
        runs = [
            pipeline(prompts, num_inference_steps=5, generator=torch.Generator().manual_seed(seed)).image_embeds
            for seed in range(8)
        ]
    return dict(zip(words, F.normalize(torch.stack(runs), dim=-1).mean(0), strict=True))


def save_tiny_world(folder: Path) -> None:
    """Build the tiny world and write it with `save_pretrained` (the layout of a real prior repository)."""
    build_tiny_prior_pipeline().save_pretrained(folder, safe_serialization=True)
