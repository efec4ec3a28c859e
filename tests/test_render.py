"""Rendering against diffusers' own pipelines: the same embeds and seed give the same images."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import (
    KandinskyPipeline,
    KandinskyPriorPipeline,
    KandinskyV22Pipeline,
    KandinskyV22PriorPipeline,
)
from tiny_decoder_21 import build_tiny_decoder_21_pipeline

from conceptlab.engine.errors import UsageError
from conceptlab.engine.models.backend import DecoderStack
from conceptlab.engine.models.plugins import load_backend
from conceptlab.engine.prior.tokens import add_placeholder_token
from conceptlab.engine.rendering.render import RenderSettings, prior_image_embeds, render_image_embeds, render_prompts

FAST = RenderSettings(size=32, steps=4, guidance=7.5, prior_steps=5, prior_guidance=4.0)


def _prior_pipeline(pipeline_class, stack):
    pipeline = pipeline_class(
        prior=stack.prior,
        image_encoder=stack.image_encoder,
        text_encoder=stack.text_encoder,
        tokenizer=stack.tokenizer,
        scheduler=stack.scheduler,
        image_processor=stack.image_processor,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _pixels(images) -> np.ndarray:
    return np.stack([np.asarray(image, dtype=np.int16) for image in images])


@pytest.mark.parametrize("pipeline_class", [KandinskyPriorPipeline, KandinskyV22PriorPipeline])
@pytest.mark.parametrize("negative_prompt", [None, "", "a photo of a dog"])
def test_prior_image_embeds_match_diffusers_pipeline(stack, pipeline_class, negative_prompt):
    """None (the default): the zero image's embedding as the negative, as diffusers and the official code."""
    add_placeholder_token(stack.tokenizer, stack.text_encoder, "<new-pet>", "pet")
    prompts = ["a photo of a <new-pet>", "a watercolor painting of a fruit"]
    expected = _prior_pipeline(pipeline_class, stack)(
        prompts,
        negative_prompt=None if negative_prompt is None else [negative_prompt] * len(prompts),
        num_inference_steps=FAST.prior_steps,
        guidance_scale=FAST.prior_guidance,
        generator=torch.Generator().manual_seed(3),
    )
    image_embeds, negative_image_embeds = prior_image_embeds(stack, prompts, 3, FAST, negative_prompt)
    torch.testing.assert_close(image_embeds, expected.image_embeds, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(negative_image_embeds, expected.negative_image_embeds, rtol=1e-5, atol=1e-5)
    assert (image_embeds[0] - image_embeds[1]).norm() > 0.1 * image_embeds[0].norm()


def test_render_matches_kandinsky_v22_pipeline(stack, tiny_decoder):
    image_embeds, negative_image_embeds = prior_image_embeds(stack, ["a photo of a cat"], 5, FAST)
    components = tiny_decoder.pipeline.components
    pipeline = KandinskyV22Pipeline(unet=components["unet"], scheduler=components["scheduler"], movq=components["movq"])
    pipeline.set_progress_bar_config(disable=True)
    expected = pipeline(
        image_embeds=image_embeds,
        negative_image_embeds=negative_image_embeds,
        height=32,
        width=32,
        num_inference_steps=FAST.steps,
        guidance_scale=FAST.guidance,
        generator=torch.Generator().manual_seed(11),
    ).images
    ours = render_image_embeds(tiny_decoder, image_embeds, negative_image_embeds, 11, FAST)
    assert ours[0].size == (32, 32)
    np.testing.assert_array_equal(_pixels(ours), _pixels(expected))


def test_images_depend_on_image_embedding_and_seed(stack, tiny_decoder):
    (cat, negative), (fruit, _) = (prior_image_embeds(stack, [p], 5, FAST) for p in ("a photo of a cat", "a fruit"))
    cat_image, fruit_image, cat_other_seed = (
        _pixels(render_image_embeds(tiny_decoder, embeds, negative, seed, FAST))
        for embeds, seed in ((cat, 1), (fruit, 1), (cat, 2))
    )
    assert np.abs(cat_image - fruit_image).mean() > 5
    assert np.abs(cat_image - cat_other_seed).mean() > 5


def test_render_prompts_is_one_image_per_seed_and_repeatable(stack, tiny_decoder):
    add_placeholder_token(stack.tokenizer, stack.text_encoder, "<new-pet>", "pet")
    prompts, seeds = ["a plush toy <new-pet>"] * 2, [42, 43]
    first = render_prompts(stack, tiny_decoder, prompts, seeds, FAST)
    again = render_prompts(stack, tiny_decoder, prompts, seeds, FAST)
    alone = render_prompts(stack, tiny_decoder, prompts[1:], seeds[1:], FAST)
    assert len(first) == 2
    np.testing.assert_array_equal(_pixels(first), _pixels(again))
    np.testing.assert_array_equal(_pixels(first[1:]), _pixels(alone))
    assert np.abs(_pixels(first[:1]) - _pixels(first[1:])).mean() > 5


@pytest.fixture(scope="session")
def decoder_21(tmp_path_factory) -> DecoderStack:
    """The tiny 2.1 decoder, saved and loaded back through the `kandinsky-2.1` backend's own loading code."""
    folder = tmp_path_factory.mktemp("tiny-decoder-21")
    build_tiny_decoder_21_pipeline().save_pretrained(folder)
    return load_backend("kandinsky-2.1").load_decoder(str(folder), torch.device("cpu"), torch.float32)


def _kandinsky_21_images(decoder: DecoderStack, prompt: str, embeds, negative, seed: int):
    pipeline = KandinskyPipeline(**decoder.pipeline.components)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline(
        prompt=prompt,
        image_embeds=embeds,
        negative_image_embeds=negative,
        height=32,
        width=32,
        num_inference_steps=FAST.steps,
        guidance_scale=FAST.guidance,
        generator=torch.Generator().manual_seed(seed),
    ).images


def test_render_21_equals_kandinsky_pipeline_with_the_empty_or_given_decoder_prompt(stack, decoder_21):
    assert isinstance(decoder_21.pipeline, KandinskyPipeline)
    unet = decoder_21.pipeline.unet.config  # 2.1: M-CLIP text 32 wide here (1024 real), image embeds 64 (768 real)
    assert decoder_21.image_embedding_dim == unet.cross_attention_dim == 64 != unet.encoder_hid_dim
    embeds, negative = prior_image_embeds(stack, ["a photo of a cat"], 3, FAST)
    empty = render_image_embeds(decoder_21, embeds, negative, 9, FAST)
    np.testing.assert_array_equal(_pixels(empty), _pixels(_kandinsky_21_images(decoder_21, "", embeds, negative, 9)))
    plush = render_image_embeds(decoder_21, embeds, negative, 9, replace(FAST, decoder_prompt="a plush toy"))
    expected = _kandinsky_21_images(decoder_21, "a plush toy", embeds, negative, 9)
    np.testing.assert_array_equal(_pixels(plush), _pixels(expected))
    assert np.abs(_pixels(plush) - _pixels(empty)).mean() > 1  # the decoder prompt reaches the 2.1 decoder


def test_tiny_prior_renders_through_the_21_decoder(stack, decoder_21):
    token = "<render-21>"
    add_placeholder_token(
        stack.tokenizer, stack.text_encoder, token, stack.text_encoder.get_input_embeddings().weight[5]
    )
    cat, concept = render_prompts(stack, decoder_21, ["a photo of a cat", f"a photo of a {token}"], [4, 4], FAST)
    assert cat.size == concept.size == (32, 32)
    assert np.abs(_pixels([cat]) - _pixels([concept])).mean() > 1


@pytest.mark.parametrize(
    ("values", "option"),
    [
        ({"size": 0}, "--size"),
        ({"steps": 0}, "--steps"),
        ({"prior_steps": 0}, "--prior-steps"),
        ({"guidance": -5.0}, "--guidance"),
        ({"guidance": float("inf")}, "--guidance"),
        ({"prior_guidance": float("nan")}, "--prior-guidance"),
    ],
)
def test_render_settings_refuse_what_no_sampler_runs(values, option):
    with pytest.raises(UsageError, match=f"^{option} must be"):
        replace(FAST, **values)


def test_zero_guidance_and_one_step_render_and_turn_the_negatives_off(stack, tiny_decoder):
    """Accepted, and what diffusers does with them: one decoder step, and a guidance of at most 1 is no
    classifier-free guidance: the prior's embeds are those of guidance 1, and the decoder's negative embedding
    changes nothing."""
    assert replace(FAST, steps=1, prior_steps=1, guidance=0.0, prior_guidance=0.0).steps == 1
    settings = replace(FAST, steps=1, prior_steps=2, guidance=0.0, prior_guidance=0.0)  # unCLIP's scheduler needs 2
    prompt = ["a photo of a cat"]
    plain, negative = prior_image_embeds(stack, prompt, 3, settings)
    at_one, _ = prior_image_embeds(stack, prompt, 3, replace(settings, prior_guidance=1.0))
    guided, _ = prior_image_embeds(stack, prompt, 3, replace(settings, prior_guidance=4.0))
    torch.testing.assert_close(plain, at_one, rtol=0, atol=0)
    assert (plain - guided).abs().max() > 1e-3  # above 1 the guidance does count
    (image,) = render_image_embeds(tiny_decoder, plain, negative, 5, settings)
    (other_negative,) = render_image_embeds(tiny_decoder, plain, -negative, 5, settings)
    assert image.size == (32, 32)
    np.testing.assert_array_equal(_pixels([image]), _pixels([other_negative]))
    (two_steps,) = render_image_embeds(tiny_decoder, plain, negative, 5, replace(settings, steps=2))
    assert np.abs(_pixels([two_steps]) - _pixels([image])).mean() > 1  # one step is one step, not the default
