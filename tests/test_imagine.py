"""`imagine`: the oracle's answers enter the unconditional branch from the next step, on the stock pipelines."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from conceptlab.engine.imagine import ImagineRequest, imagine, load
from conceptlab.engine.imagine import run as imagine_run
from conceptlab.engine.imagine.estimate import StepRecorder
from conceptlab.engine.io.images import png_bytes
from conceptlab.engine.rendering.render import RenderSettings, prior_image_embeds, render_prompts, seeded_generator

STEPS = 4


class Always:
    """An oracle that always gives the same answer, and counts the questions."""

    name = "always"

    def __init__(self, answer: str = "It appears to be a cat"):
        self.answer, self.calls = answer, 0

    def ask(self, images, question, known):
        self.calls += 1
        return [self.answer] * len(images)


def _request(model: str, tmp_path: Path, **more) -> ImagineRequest:
    base = ImagineRequest(category="pet", n=1, model=model, device="cpu", dtype="float32", steps=STEPS, out=tmp_path)
    return replace(base, **more)


@pytest.fixture(scope="module")
def tiny_state(tmp_path_factory):
    """The tiny Kandinsky backend, loaded once for this file."""
    return load(_request("tiny", tmp_path_factory.mktemp("x")))


@pytest.fixture(scope="module", params=["tiny", "tiny-sdxl", "tiny-sd3"])
def loaded(request, tmp_path_factory, tiny_state):
    if request.param == "tiny":
        return "tiny", tiny_state
    return request.param, load(_request(request.param, tmp_path_factory.mktemp("x")))


def _denoiser(loaded_route):
    pipeline = loaded_route.pipeline
    return getattr(pipeline, "unet", None) or pipeline.transformer


def _unconditional(model: str, kwargs: dict) -> torch.Tensor:
    """The unconditional half of what the denoiser was given: image embeds (Kandinsky) or prompt embeds."""
    if model == "tiny":
        return kwargs["added_cond_kwargs"]["image_embeds"][0]
    return kwargs["encoder_hidden_states"][0]


def _expected_cat(model: str, route, prompt: str) -> torch.Tensor:
    """ "cat" as the stock code encodes a negative: the prior's embedding, or the pipeline's own negative branch."""
    if model == "tiny":
        return prior_image_embeds(route.loaded.stack, ["cat"], 0, route.render)[0][0]
    pipeline = route.pipeline
    more = {"prompt_2": None, "prompt_3": None} if model == "tiny-sd3" else {}
    return pipeline.encode_prompt(prompt=prompt, negative_prompt="cat", device="cpu", **more)[1][0]


def test_an_answer_becomes_the_unconditional_embedding_from_the_next_step(loaded, tmp_path):
    model, state = loaded
    seen: list[torch.Tensor] = []
    hook = _denoiser(state.route).register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(_unconditional(model, kwargs).clone()), with_kwargs=True
    )
    request = _request(model, tmp_path, ask_until=0.25)  # asks at step 0 only
    try:
        result = imagine(request, oracle=Always(), loaded=state)
    finally:
        hook.remove()
    assert result.negatives == {0: ["cat"]}
    assert result.images[0].negatives[0]["step"] == 1
    cat = _expected_cat(model, state.route, request.filled_prompt())
    assert len(seen) == STEPS
    assert not torch.allclose(seen[0], cat.to(seen[0].dtype))  # step 0: the plain negative
    for step in range(1, STEPS):
        torch.testing.assert_close(seen[step], cat.to(seen[step].dtype))
    if model == "tiny-sd3":  # the T5 half (after CLIP's 77 tokens) is re-encoded too, not left at zeros
        t5_plain, t5_cat = seen[0][77:], seen[1][77:]
        assert t5_cat.shape[0] == 256 and t5_cat.abs().sum() > 0 and not torch.allclose(t5_plain, t5_cat)
    record = json.loads(result.record.read_text())
    assert record["images"][0]["answers"] == [{"step": 0, "answer": "It appears to be a cat"}]


def _plain(model: str, state, request: ImagineRequest) -> bytes:
    route, settings = state.route, state.settings
    if model == "tiny":
        render = RenderSettings(**{**route.render.__dict__})
        images = render_prompts(route.loaded.stack, route.decoder, [request.filled_prompt()], [0], render)
        return png_bytes(images[0])
    image = route.pipeline(
        request.filled_prompt(),
        num_inference_steps=settings.steps,
        guidance_scale=settings.guidance,
        height=settings.size,
        width=settings.size,
        generator=seeded_generator(0),
    ).images[0]
    return png_bytes(image)


def test_a_window_without_steps_gives_the_plain_pipelines_image_and_a_seed_its_bytes(loaded, tmp_path):
    model, state = loaded
    oracle = Always()
    request = _request(model, tmp_path / "empty", ask_from=0.5, ask_until=0.5)
    result = imagine(request, oracle=oracle, loaded=state)
    assert oracle.calls == 0
    assert result.images[0].path.read_bytes() == _plain(model, state, request)
    again = imagine(_request(model, tmp_path / "a"), oracle=Always(), loaded=state)
    twice = imagine(_request(model, tmp_path / "b"), oracle=Always(), loaded=state)
    assert again.images[0].path.read_bytes() == twice.images[0].path.read_bytes()
    assert again.images[0].path.read_bytes() != result.images[0].path.read_bytes()  # the negative changed it


def test_the_clean_estimate_is_the_schedulers_own(loaded):
    """DDPM (Kandinsky) and Euler (SDXL) give `pred_original_sample`; flow matching's last step lands on x̂0."""
    model, state = loaded
    route, settings = state.route, state.settings
    recorder = StepRecorder(route.pipeline.scheduler)
    checked = []

    def check(pipeline, step, timestep, tensors):
        estimate = recorder.clean_estimate()
        own = recorder.last.pred_original_sample
        if own is not None:
            torch.testing.assert_close(estimate, own.float())
            checked.append(step)
        elif step == settings.steps - 1:  # sigma goes to 0: the last step's latents are x_t - sigma * v
            torch.testing.assert_close(estimate, tensors["latents"].float())
            checked.append(step)
        return {}

    with recorder.active(), torch.inference_mode():
        route.pipeline(
            **route.arguments("a photo of a pet", 0, "", settings),
            output_type="latent",
            callback_on_step_end=check,
            callback_on_step_end_tensor_inputs=["latents"],
        )
    assert checked == (list(range(settings.steps)) if model != "tiny-sd3" else [settings.steps - 1])
    assert "step" not in vars(route.pipeline.scheduler)  # the scheduler is stock again


def test_a_rerun_skips_finished_images_and_force_redoes_them(tmp_path, tiny_state):
    state = tiny_state
    first = imagine(_request("tiny", tmp_path, n=1), oracle=Always(), loaded=state)
    oracle = Always()
    again = imagine(_request("tiny", tmp_path, n=2), oracle=oracle, loaded=state)
    assert [image.skipped for image in again.images] == [True, False]
    assert oracle.calls == 2  # steps 0 and 1 of the one new image (the window is the first half)
    assert again.images[0].path.read_bytes() == first.images[0].path.read_bytes()
    forced = Always()
    imagine(_request("tiny", tmp_path, n=1, force=True), oracle=forced, loaded=state)
    assert forced.calls == 2
    assert image_names(tmp_path) == {"0.png", "imagine-grid.png", "imagine.json"}  # seed 1 went with its record
    recorded = json.loads((tmp_path / "imagine.json").read_text())
    assert [image["seed"] for image in recorded["images"]] == [0]


def image_names(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--ask-from", "0.6", "--ask-until", "0.2"], "--ask-until 0.2 comes before --ask-from 0.6"),
        (["--ask-until", "1.5"], "--ask-until 1.5 is outside the steps"),
        (["--ask-from", "-0.1"], "--ask-from -0.1 is outside the steps"),
        (["--oracle", "nope"], "Unknown oracle 'nope'"),
        (["--question", " "], "--question is empty"),
        (["--model", "kandinsky-2.1"], "cannot steer kandinsky-2.1"),
        (["--model", "tiny-sdxl", "--oracle", "clip-zeroshot"], "--oracle clip-zeroshot uses a Kandinsky prior"),
    ],
)
def test_bad_inputs_are_refused_in_one_line_before_weights_load(run_cli, monkeypatch, tmp_path, args, names):
    monkeypatch.setattr(imagine_run, "load", lambda request: pytest.fail("weights were loaded"))
    code, _, err = run_cli("imagine", "--category", "pet", "--model", "tiny", "--out", tmp_path / "o", *args)
    assert code == 2
    assert names in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_the_command_writes_images_a_grid_and_a_record_whose_negatives_grew(run_cli, tmp_path):
    out = tmp_path / "pets"
    code, stdout, err = run_cli(
        "imagine", "--category", "pet", "--model", "tiny", "-n", "1", "--steps", "4", "--out", out
    )
    assert code == 0, err
    record = json.loads((out / "imagine.json").read_text())
    assert [image["file"] for image in record["images"]] == ["0.png"]
    for image in record["images"]:
        steps = [negative["step"] for negative in image["negatives"]]
        assert steps and all(0 < step <= 2 for step in steps)  # named while sampling, in the first half
        assert image["seconds_asking"] > 0 and image["seconds_denoising"] > 0
    assert (out / "imagine-grid.png").is_file() and str(out / "imagine-grid.png") in stdout


def test_picked_images_become_an_evolve_parent_and_a_concept(run_cli, tmp_path, tiny_state):
    from conceptlab.engine.concept.file import load_concept

    imagine(_request("tiny", tmp_path / "run", n=2), oracle=Always(), loaded=tiny_state)
    code, stdout, err = run_cli("pick", tmp_path / "run", "--seeds", "1", "--out", tmp_path / "chosen")
    assert code == 0, err
    assert stdout.split() == [str(tmp_path / "chosen" / "1.png")]
    assert sorted(p.name for p in (tmp_path / "chosen").iterdir()) == ["1.png"]
    assert (tmp_path / "chosen" / "1.png").read_bytes() == (tmp_path / "run" / "1.png").read_bytes()
    code, _, err = run_cli("pick", tmp_path / "run", "--seeds", "7", "--out", tmp_path / "other")
    assert code == 2 and "no image of seed 7" in err
    args = ["--model", "tiny", "--device", "cpu", "--init", "pet", "--steps", "5", "--no-images"]
    code, _, err = run_cli("evolve", tmp_path / "chosen", *args, "--out", tmp_path / "child")
    assert code == 0, err
    concept = load_concept(next((tmp_path / "child").glob("*.safetensors")))
    assert [parent["path"] for parent in concept.metadata["parents"]] == [str(tmp_path / "chosen")]


def test_the_bench_row_times_plain_and_imagine_on_one_model():
    from conceptlab.engine.benchmark.imagine import time_imagine

    row = time_imagine("tiny-sd3", "cpu", "float32", rounds=1, steps=STEPS)
    assert row["asks_per_image"] == row["steps"] // 2 == 2
    assert row["ratio"] == pytest.approx(row["imagine_s_per_image"] / row["plain_s_per_image"], rel=0.01)
    assert 0 < row["asking_s_per_image"] < row["imagine_s_per_image"]


def test_the_gallery_shows_imagine_runs_with_negatives_and_their_steps(run_cli, tmp_path, tiny_state):
    imagine(_request("tiny", tmp_path / "runs" / "imagine-pet", n=2), oracle=Always(), loaded=tiny_state)
    code, stdout, err = run_cli("gallery", tmp_path / "runs", "--out", tmp_path / "site")
    assert code == 0, err
    assert "1 imagine run(s)" in stdout
    page = (tmp_path / "site" / "index.html").read_text()
    assert "Imagine runs" in page and "a photo of a new type of pet" in page
    assert page.count('class="chip oracle">cat<span class="meta">step 1 · adaptive</span>') == 2
    copied = sorted(p.name for p in (tmp_path / "site" / "images" / "imagine-0").iterdir())
    assert copied == ["0.png", "1.png"]
    assert 'src="images/imagine-0/0.png"' in page


def test_a_folder_holding_another_runs_record_is_refused_before_weights_load(run_cli, monkeypatch, tmp_path):
    monkeypatch.setattr(imagine_run, "load", lambda request: pytest.fail("weights were loaded"))
    (tmp_path / "imagine.json").write_text(json.dumps({"format": 1, "settings": {"category": "fruit"}, "images": []}))
    code, _, err = run_cli("imagine", "--category", "pet", "--model", "tiny", "--out", tmp_path)
    assert code == 2 and "holds a run with other settings" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "imagine.json").unlink()
    (tmp_path / "0.png").write_bytes(b"mine")
    code, _, err = run_cli("imagine", "--category", "pet", "--model", "tiny", "--out", tmp_path)
    assert code == 2 and "0.png already exists" in err and "--force" in err
    assert (tmp_path / "0.png").read_bytes() == b"mine"


def test_two_images_that_reach_the_same_negatives_share_one_prior_run(tmp_path, tiny_state, monkeypatch):
    from conceptlab.engine.imagine import steering as routes

    calls: list[list[str]] = []
    real = routes.prior_image_embeds
    monkeypatch.setattr(
        routes, "prior_image_embeds", lambda stack, prompts, *a: calls.append(prompts) or real(stack, prompts, *a)
    )
    tiny_state.route.negative_cache.clear()
    imagine(_request("tiny", tmp_path, n=2), oracle=Always(), loaded=tiny_state)
    prompt = _request("tiny", tmp_path).filled_prompt()
    assert calls == [[prompt], ["cat"], [prompt]]  # the second image finds "cat" sampled
