"""`imagine --preset paper`: each value pinned against the official code's, read in
Shelley-Golan/VLM-Guided-creative-diffusion (commit 63749db), and the preset's previews checked on tiny SD3."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conceptlab.engine.imagine import ImagineRequest, imagine, load
from conceptlab.engine.imagine import run as imagine_run
from conceptlab.engine.imagine.official import (
    PAPER_ASK_FROM,
    PAPER_ASK_UNTIL,
    PAPER_FREQ,
    PAPER_TOP_K,
    QWEN_PROMPT,
    SKIP_WORDS,
    OfficialNegatives,
    clean_vqa_answer,
)
from conceptlab.engine.imagine.request import ask_steps
from conceptlab.plugins.pipelines import SD35

STEPS = 3

OFFICIAL_SCRIPT_DEFAULTS = {"steps": 28, "guidance_scale": 4.5, "height": 1024, "topk": 1, "freq": 1}
"""gen_utils/generate_sd35_image.py, `main`'s argparse defaults: --steps 28, --guidance_scale 4.5, --height 1024,
--topk 1, --freq 1, --vqa_start_step 0, --vqa_stop_step 28."""
OFFICIAL_SKIP_WORDS = {"i", "a", "an", "the", "is", "are", "am", "be", "it", "to", "of", "in", "on", "at", "by", "for"}
OFFICIAL_SKIP_WORDS |= {"with", "no", "yes", "0", "1", "2", "neither", "no dog", "no cat", "none", "no animal"}
"""custom_model/custom_sd35.py, `clean_vqa_answer`'s `skip_words`."""
OFFICIAL_CLEANED = {
    "It appears to be a fluffy cat": "fluffy cat",  # its docstring's example
    "the dog": "dog",  # its docstring's example
    "yes": "",  # its docstring's example
    "It appears to be a cat and a dog": "cat, dog",
    "cats, dogs; or birds & fish": "cats, dogs, birds, fish",
    '  "A hamster!" ': "hamster",
    "no cat": "",
    "2": "",
    "No, it is a cat": "it is cat",
    "it's a b and an ox": "ox",
    "There are two dogs or the cats": "two dogs, cats",
    "I see a Cat; a mouse": "cat, mouse",
}
"""What custom_model/custom_sd35.py's `clean_vqa_answer` returns for each answer (run on the official function)."""


def test_the_presets_values_are_the_official_scripts_defaults():
    steps = OFFICIAL_SCRIPT_DEFAULTS["steps"]
    assert (SD35.steps, SD35.guidance, SD35.size) == (steps, 4.5, OFFICIAL_SCRIPT_DEFAULTS["height"])
    assert (PAPER_ASK_FROM * steps, PAPER_ASK_UNTIL * steps) == (0, 28)  # --vqa_start_step 0, --vqa_stop_step 28
    assert OFFICIAL_SCRIPT_DEFAULTS["freq"] == PAPER_FREQ and OFFICIAL_SCRIPT_DEFAULTS["topk"] == PAPER_TOP_K
    request = ImagineRequest(category="pet", model="sd3.5", preset="paper")
    assert (request.ask_from, request.window_end, request.ask_every, request.top_k) == (0.0, 1.0, 1, 1)
    assert request.preview_mode == "official"
    assert ask_steps(steps, request.ask_from, request.window_end, 1, official=True) == set(range(steps))
    ours = ImagineRequest(category="pet", model="sd3.5")
    assert (ours.window_end, ours.preview_mode) == (0.5, "tiny")  # our defaults stay ours
    # generate_sd35_image.py, QwenOracle.__call__: f"Answer with a single word. \n{question}"
    assert QWEN_PROMPT.format(question="What is it?") == "Answer with a single word. \nWhat is it?"


def test_the_official_cleaner_and_skip_list():
    assert SKIP_WORDS == OFFICIAL_SKIP_WORDS
    assert {answer: clean_vqa_answer(answer) for answer in OFFICIAL_CLEANED} == OFFICIAL_CLEANED


def test_the_official_negatives_one_joined_entry_per_answer_and_freq_on_the_step_index():
    negatives = OfficialNegatives(("cat", "dog"), main_object="pet", freq=2)
    assert negatives.add_answers(["It appears to be a cat and a hamster"], 4) == []  # asked at step 3: 3 % 2
    assert negatives.add_answers(["It appears to be a cat and a hamster"], 5) == ["cat, hamster pet"]
    assert negatives.add_answers(["cat and hamster", "yes"], 7) == []  # the same entry again; a skip-word
    assert negatives.add_answers(["cat"], 7) == ["cat pet"]  # the static prompt "cat, dog" is one entry
    assert negatives.prompt() == "cat, dog, cat, hamster pet, cat pet"
    negatives.clear(9)
    assert negatives.prompt() == ""  # clear_negatives_at_stop encodes "" (custom_sd35.py), the static one too
    assert ask_steps(10, 0.2, 1.0, 3) == {2, 5, 8}  # ours counts from the window's start
    assert ask_steps(10, 0.2, 1.0, 3, official=True) == set(range(2, 10))  # theirs asks every step


class Recording:
    """An oracle that keeps every picture it is shown and always answers the same."""

    name = "recording"

    def __init__(self, answer: str = "It appears to be a cat and a dog"):
        self.answer, self.pictures = answer, []

    def ask(self, images, question, known):
        self.pictures.extend(image.copy() for image in images)
        return [self.answer] * len(images)


def _request(tmp_path: Path, **more) -> ImagineRequest:
    base = ImagineRequest(
        category="pet", n=1, model="tiny-sd3", device="cpu", dtype="float32", steps=STEPS, out=tmp_path
    )
    return replace(base, **more)


@pytest.fixture(scope="module")
def sd3(tmp_path_factory):
    return load(_request(tmp_path_factory.mktemp("x"), preset="paper"))


def test_under_the_preset_the_oracle_sees_the_full_vae_decode_of_latents_minus_the_guided_prediction(sd3, tmp_path):
    pipeline = sd3.route.pipeline
    expected = []

    def after_transformer(module, args, kwargs, output):
        uncond, text = output[0].chunk(2)
        guided = uncond + sd3.settings.guidance * (text - uncond)  # the guided prediction, as the pipeline forms it
        x0 = kwargs["hidden_states"].chunk(2)[0] - guided
        latents = x0 / pipeline.vae.config.scaling_factor + pipeline.vae.config.shift_factor
        decoded = pipeline.vae.decode(latents, return_dict=False)[0]
        expected.append(np.asarray(pipeline.image_processor.postprocess(decoded, output_type="pil")[0]))

    hook = pipeline.transformer.register_forward_hook(after_transformer, with_kwargs=True)
    encodings = []
    real_encode = pipeline.encode_prompt
    pipeline.encode_prompt = lambda **kwargs: encodings.append(kwargs["prompt"]) or real_encode(**kwargs)
    oracle = Recording()
    request = _request(tmp_path, preset="paper", neg=("bird",))
    try:
        result = imagine(request, oracle=oracle, loaded=sd3)
    finally:
        hook.remove()
        del pipeline.encode_prompt
    assert len(oracle.pictures) == len(expected) == STEPS  # asked at every step, 0 to N - 1
    for picture, decoded in zip(oracle.pictures, expected, strict=True):
        assert picture.size == (sd3.settings.size, sd3.settings.size)  # full size, not shrunk for the oracle
        assert np.array_equal(np.asarray(picture), decoded)
    assert result.negatives == {0: ["bird", "cat, dog"]}  # one joined entry per answer
    # the pipeline's own encoding of the prompt, then the negatives re-encoded at every step of the window but the last
    assert encodings == [request.filled_prompt()] + ["bird, cat, dog"] * (STEPS - 1)


def test_clear_at_stop_drops_the_oracles_negatives_after_the_window(sd3, tmp_path):
    seen: list[torch.Tensor] = []
    pipeline = sd3.route.pipeline
    hook = pipeline.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["encoder_hidden_states"][0].clone()), with_kwargs=True
    )
    try:
        request = _request(tmp_path, ask_until=0.34, clear_at_stop=True, preview="full", neg=("bird",))
        result = imagine(request, oracle=Recording("cat"), loaded=sd3)
    finally:
        hook.remove()
    entries = result.images[0].negatives
    assert [(entry["word"], entry["step"], entry.get("until")) for entry in entries] == [
        ("bird", 0, None),
        ("cat", 1, 2),
    ]
    bird = pipeline.encode_prompt(prompt="x", negative_prompt="bird", device="cpu", prompt_2=None, prompt_3=None)[1]
    torch.testing.assert_close(seen[0], bird[0])
    assert not torch.allclose(seen[1], bird[0])  # "bird, cat" from step 1
    torch.testing.assert_close(seen[2], bird[0])  # cleared at the stop (step 1): "bird" again from step 2


def test_top_k_takes_each_questions_k_best_rank_by_rank(sd3, tmp_path):
    class Ranked(Recording):
        def ask_ranked(self, image, question, k):
            self.pictures.append(image)
            return [f"{question.text} {rank}" for rank in range(k)]

    oracle = Ranked()
    request = _request(tmp_path, question=("first {}", "second"), top_k=2, ask_until=0.34, preview="full")
    result = imagine(request, oracle=oracle, loaded=sd3)
    answers = [entry["answer"] for entry in result.images[0].answers]
    assert answers == ["first pet 0", "second 0", "first pet 1", "second 1"]  # for each rank, each question


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--preset", "paper"], "--preset paper is the official code's SD3.5 setting"),
        (["--preset", "film"], "--preset 'film': the one preset is paper"),
        (["--model", "tiny-sd3", "--preset", "paper", "--max-negatives", "3"], "the official code has no cap"),
        (["--model", "tiny-sd3", "--oracle", "blip2", "--top-k", "2"], "blip2 gives one answer per question"),
        (["--top-k", "0"], "--top-k 0: take 1 or more"),
    ],
)
def test_preset_inputs_are_refused_in_one_line_before_weights_load(run_cli, monkeypatch, tmp_path, args, names):
    monkeypatch.setattr(imagine_run, "load", lambda request: pytest.fail("weights were loaded"))
    code, _, err = run_cli("imagine", "--category", "pet", "--model", "tiny", "--out", tmp_path / "o", *args)
    assert code == 2
    assert names in err and len(err.strip().splitlines()) == 1


def test_qwen_gets_the_official_prompt_under_the_preset_and_vilt_ranks_its_answers():
    from PIL import Image

    from conceptlab.engine.adaptive.oracle import OracleOptions, Question, load_oracle
    from conceptlab.engine.imagine.run import DeviceHost
    from conceptlab.plugins.oracles.qwen_vl import QwenVLOracle

    official = Question("pet", wording="What kind of pet is this?", official=True)
    assert QwenVLOracle.prompt(official) == "Answer with a single word. \nWhat kind of pet is this?"
    ours = replace(official, official=False)
    assert QwenVLOracle.prompt(ours) == "Answer with a single word. What kind of pet is this?"
    vilt = load_oracle("vilt", DeviceHost(torch.device("cpu")), OracleOptions(model="tiny"))
    image = Image.new("RGB", (32, 32), (200, 40, 40))
    ranked = vilt.ask_ranked(image, official, 3)
    assert len(set(ranked)) == 3 and ranked[0] == vilt.ask([image], official, [])[0]
