"""`imagine --model tiny-flux`: FLUX.1's negatives through true classifier-free guidance, on the stock FluxPipeline."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from conceptlab.engine.imagine import ImagineRequest, imagine, load
from conceptlab.engine.imagine import run as imagine_run
from conceptlab.engine.io.images import png_bytes
from conceptlab.engine.rendering.render import seeded_generator
from conceptlab.plugins.tiny.flux import MAX_SEQUENCE_LENGTH

STEPS = 3


class Always:
    name = "always"

    def __init__(self, answer: str = "It appears to be a cat"):
        self.answer, self.calls, self.sizes = answer, 0, []

    def ask(self, images, question, known):
        self.calls += 1
        self.sizes.extend(image.size for image in images)
        return [self.answer] * len(images)


def _request(tmp_path: Path, **more) -> ImagineRequest:
    base = ImagineRequest(
        category="pet", n=1, model="tiny-flux", device="cpu", dtype="float32", steps=STEPS, out=tmp_path
    )
    return replace(base, **more)


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    return load(_request(tmp_path_factory.mktemp("x")))


def test_an_answer_becomes_the_true_cfg_negative_from_the_next_step(flux, tmp_path):
    pipeline = flux.route.pipeline
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    hook = pipeline.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append(
            (kwargs["encoder_hidden_states"].clone(), kwargs["pooled_projections"].clone())
        ),
        with_kwargs=True,
    )
    try:
        result = imagine(_request(tmp_path, ask_until=0.34), oracle=Always(), loaded=flux)
    finally:
        hook.remove()
    assert result.negatives == {0: ["cat"]} and result.images[0].negatives[0]["step"] == 1
    assert len(calls) == 2 * STEPS  # true CFG: the prompt, then the negative, at every step
    unconditional = calls[1::2]

    def encoded(text: str) -> tuple[torch.Tensor, torch.Tensor]:
        embeds, pooled, _ = pipeline.encode_prompt(text, None, max_sequence_length=MAX_SEQUENCE_LENGTH)
        return embeds, pooled

    for part, (empty, cat) in enumerate(zip(encoded(""), encoded("cat"), strict=True)):  # T5, then pooled CLIP
        torch.testing.assert_close(unconditional[0][part], empty)
        assert not torch.allclose(empty, cat)
        for step in range(1, STEPS):
            torch.testing.assert_close(unconditional[step][part], cat)


def _stock(flux, prompt: str, negative: str) -> bytes:
    settings = flux.settings
    image = flux.route.pipeline(
        prompt,
        negative_prompt=negative,
        true_cfg_scale=settings.guidance,
        num_inference_steps=settings.steps,
        height=settings.size,
        width=settings.size,
        max_sequence_length=MAX_SEQUENCE_LENGTH,
        generator=seeded_generator(0),
    ).images[0]
    return png_bytes(image)


def test_a_window_without_steps_gives_the_stock_pipelines_image_and_a_seed_its_bytes(flux, tmp_path):
    oracle = Always()
    for negatives in ((), ("bird",)):
        request = _request(tmp_path / f"empty{len(negatives)}", ask_from=0.5, ask_until=0.5, neg=negatives)
        result = imagine(request, oracle=oracle, loaded=flux)
        assert result.images[0].path.read_bytes() == _stock(flux, request.filled_prompt(), ", ".join(negatives))
    assert oracle.calls == 0
    again = imagine(_request(tmp_path / "a"), oracle=Always(), loaded=flux)
    twice = imagine(_request(tmp_path / "b"), oracle=Always(), loaded=flux)
    assert again.images[0].path.read_bytes() == twice.images[0].path.read_bytes()
    assert again.images[0].path.read_bytes() != result.images[0].path.read_bytes()  # the negatives changed it


def test_the_preset_shows_the_oracle_the_full_size_unpacked_decode(flux, tmp_path):
    oracle = Always()
    imagine(_request(tmp_path, preset="paper"), oracle=oracle, loaded=flux)
    assert oracle.calls == STEPS and set(oracle.sizes) == {(flux.settings.size, flux.settings.size)}


def test_the_command_writes_reproducible_images_whose_negatives_grew(run_cli, tmp_path):
    for name in ("one", "two"):
        args = ["--category", "pet", "--model", "tiny-flux", "-n", "2", "--steps", "2", "--out", tmp_path / name]
        code, _, err = run_cli("imagine", *args)
        assert code == 0, err
    record = json.loads((tmp_path / "one" / "imagine.json").read_text())
    assert all(image["negatives"] for image in record["images"])  # the tiny ViLT named something for each
    for seed in ("0", "1"):
        assert (tmp_path / "one" / f"{seed}.png").read_bytes() == (tmp_path / "two" / f"{seed}.png").read_bytes()


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--guidance", "1"], "--guidance 1.0: negatives act through classifier-free guidance"),
        (["--oracle", "clip-zeroshot"], "--oracle clip-zeroshot uses a Kandinsky prior"),
        (["--preview", "blurry"], "--preview 'blurry'"),
    ],
)
def test_bad_flux_inputs_are_refused_in_one_line_before_weights_load(run_cli, monkeypatch, tmp_path, args, names):
    monkeypatch.setattr(imagine_run, "load", lambda request: pytest.fail("weights were loaded"))
    code, _, err = run_cli("imagine", "--category", "pet", "--model", "tiny-flux", "--out", tmp_path / "o", *args)
    assert code == 2
    assert names in err and len(err.strip().splitlines()) == 1


def test_the_diffusers_facts_the_flux_route_rests_on():
    """FluxPipeline's callback cannot replace the negative embeddings (hence the in-place copy), and FLUX.2's pipeline
    takes no negative prompt at all (hence no FLUX.2 entry), in the installed diffusers."""
    import inspect

    from diffusers import Flux2Pipeline, FluxPipeline

    from conceptlab.engine.imagine.models import pipeline_names

    assert FluxPipeline._callback_tensor_inputs == ["latents", "prompt_embeds"]
    assert {"negative_prompt_embeds", "negative_pooled_prompt_embeds", "true_cfg_scale"} <= set(
        inspect.signature(FluxPipeline.__call__).parameters
    )
    flux2 = set(inspect.signature(Flux2Pipeline.__call__).parameters)
    assert not {"negative_prompt", "negative_prompt_embeds", "true_cfg_scale"} & flux2
    assert not [name for name in pipeline_names() if "flux.2" in name]
