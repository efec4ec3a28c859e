"""The tiny decoder paints: rendering the prior's output for a member word paints that word's tiny-world picture, an
embedding between two members paints something between their pictures, the encoder that reads the renders tells the
words apart, and the clip-zeroshot oracle's answer, used as a negative, moves a concept's renders away from that
word."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.rendering.render import prior_image_embeds, render_image_embeds, render_settings
from conceptlab.engine.training.config import create_config
from conceptlab.engine.training.create import create
from conceptlab.plugins.oracles.clip_zeroshot import OBJECT_PROMPT, zero_shot_scores
from conceptlab.plugins.tiny.backend import TinyBackend
from conceptlab.plugins.tiny.decoder import painted_words
from conceptlab.plugins.tiny.world import CATEGORY_MEMBERS, enlarge_patterns, picture_similarities, word_pattern

SETTINGS = render_settings(TinyBackend())


def _pixels(images: list[Image.Image]) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255) for image in images])


def _word_pictures(words: list[str]) -> torch.Tensor:
    """Each word's picture without its photo noise, `[n, H, W, 3]` in [0, 1]."""
    return enlarge_patterns(torch.stack([word_pattern(word) for word in words])).permute(0, 2, 3, 1)


def _render(stack, decoder, words: list[str], seed: int) -> list[Image.Image]:
    embeds = prior_image_embeds(stack, [OBJECT_PROMPT.format(word) for word in words], seed, SETTINGS)
    return render_image_embeds(decoder, *embeds, seed, SETTINGS)


def _nearest_by_pixels(renders: list[Image.Image], words: list[str]) -> list[str]:
    distances = (_pixels(renders)[:, None] - _word_pictures(words)[None]).abs().mean(dim=(2, 3, 4))
    return [words[i] for i in distances.argmin(dim=1)]


@pytest.mark.parametrize("seed", [42, 500])
def test_rendering_each_member_paints_its_own_picture(stack, tiny_decoder, seed):
    """Of the world's 48 members, each render is nearest its own word's picture in pixels for at least 90% (measured
    96-98%), and in the image encoder's space for far more than chance (1 in 48; measured 35-46% at the tiny
    backend's 10 decoder steps): the encoder tells the pictures apart by cosines of 0.96-0.99, which guidance's
    sharpening of the renders often crosses."""
    words = painted_words()
    renders = _render(stack, tiny_decoder, words, seed)
    by_pixels = np.mean([found == word for found, word in zip(_nearest_by_pixels(renders, words), words, strict=True)])
    by_encoder = picture_similarities(stack, renders, words).argmax(dim=1) == torch.arange(len(words))
    assert by_pixels >= 0.9, by_pixels
    assert by_encoder.float().mean().item() >= 0.25, by_encoder.float().mean().item()


@pytest.mark.parametrize("first, second", [("cat", "dog"), ("chair", "sofa"), ("rose", "fern"), ("guitar", "violin")])
def test_an_embedding_between_two_members_paints_something_between_their_pictures(stack, tiny_decoder, first, second):
    """Halfway between the prior's outputs for two members of a category, the render is nearer each of their
    pictures than the pictures are to each other (measured: 0.18-0.22 against 0.22-0.25, mean absolute pixel
    difference; halfway between unrelated words it may lean to one: cat/guitar 0.15 and 0.27 against 0.28)."""
    embeds, negative = prior_image_embeds(
        stack, [OBJECT_PROMPT.format(first), OBJECT_PROMPT.format(second)], 42, SETTINGS
    )
    halfway = torch.lerp(embeds[0], embeds[1], 0.5)[None]
    render = _pixels(render_image_embeds(tiny_decoder, halfway, negative[:1], 42, SETTINGS))[0]
    pictures = _word_pictures([first, second])
    apart = (pictures[0] - pictures[1]).abs().mean().item()
    to_each = [(render - picture).abs().mean().item() for picture in pictures]
    assert max(to_each) < apart, (to_each, apart)


def test_decoder_seeds_paint_the_same_picture_each_a_little_differently(stack, tiny_decoder):
    """One image embedding of "a photo of a cat", decoded from two seeds: both nearest the cat's picture, as photos
    of it vary (the seed reaches the picture, as on a real decoder)."""
    embeds = prior_image_embeds(stack, [OBJECT_PROMPT.format("cat")], 0, SETTINGS)
    renders = [render_image_embeds(tiny_decoder, *embeds, seed, SETTINGS)[0] for seed in (1, 2)]
    assert _nearest_by_pixels(renders, painted_words()) == ["cat", "cat"]
    first, second = _pixels(renders)
    assert (first - second).abs().mean().item() > 0.002


def test_the_oracle_names_the_first_render_and_training_moves_away_from_it(stack, tmp_path):
    """clip-zeroshot, shown the step-0 render of <new-pet> (initialised from "pet"), answers the pet whose text
    embedding is nearest that render's image embedding. With its answer as a negative, the concept's render (the one
    the oracle saw: first prompt, seed 42) reads less as that pet: its margin over the other pets' mean falls by more
    than a third and it is no longer the answer. The tiny world is built on the machine, and its floating-point
    rounding differs between CPUs: measured on decoded renders with the image encoder, the margin fell 0.033 ->
    -0.006, -0.019, -0.013 for run seeds 0, 1, 2 in one build, and 0.034 -> 0.014, 0.004, 0.016 in another (answer
    turtle, then rabbit), so the test asks for the fall both show, not for a sign."""
    steps = 150
    config = create_config("pet", (), steps=steps, checkpoint_every=steps, seed=0)
    result = create(config, ModelChoice(model="tiny", device="cpu", dtype="float32"), out=tmp_path / "run")
    images = result.run_dir / "images"
    renders = [Image.open(images / f"step-{step:04d}-seed-42.png") for step in (0, steps)]
    pets = list(CATEGORY_MEMBERS["pet"])
    scores = zero_shot_scores(stack, renders, pets)

    named = [n["word"] for n in result.concept.metadata["negatives"] if n["step"] == 0]
    assert named == [pets[int(scores[0].argmax())]]
    margin = scores[:, pets.index(named[0])] - scores.mean(dim=1)
    assert margin[0] > 0 and margin[1] < margin[0] * 2 / 3, margin
    assert pets[int(scores[1].argmax())] != named[0]
