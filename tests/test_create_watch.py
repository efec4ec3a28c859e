"""`create` watching its concept: images at checkpoints, a strip, adaptive negatives, style and gradual modes."""

import importlib
import json
import random

import pytest
from PIL import Image

from conceptlab.engine.adaptive.vocabulary import ART_STYLES, CATEGORY_MEMBERS
from conceptlab.engine.concept.file import load_concept
from conceptlab.engine.training.run_folder import read_log, step_lines

TINY = ("--model", "tiny", "--device", "cpu")


@pytest.fixture(scope="module")
def adaptive_run(tmp_path_factory):
    """The issue's run (100 steps, every 25) scaled to 8 steps, every 2: no negatives given, so the oracle is asked
    on the initial images and at every checkpoint but the last; what is checked is the schedule, not the training."""
    from conceptlab.cli.app import main

    out = tmp_path_factory.mktemp("adaptive")
    args = ("--steps", "8", "--every", "2", "--image-steps", "2", "--out", str(out))
    assert main(["create", "--category", "pet", *TINY, *args]) == 0
    return out


def test_oracle_is_asked_four_times_and_each_answer_is_recorded_with_its_step(adaptive_run):
    metadata = load_concept(adaptive_run / "new-pet.safetensors").metadata
    assert sorted({answer["step"] for answer in metadata["oracle_answers"]}) == [0, 2, 4, 6]
    # one answer per question: the oracle is shown only the first render, as in the official code
    assert all(len([a for a in metadata["oracle_answers"] if a["step"] == s]) == 1 for s in (0, 2, 4, 6))
    negatives = metadata["negatives"]
    assert negatives and all(n["source"] == "oracle" and n["step"] in (0, 2, 4, 6) for n in negatives)
    assert {n["word"] for n in negatives} <= set(CATEGORY_MEMBERS["pet"])
    assert len({n["word"] for n in negatives}) == len(negatives)
    named = {a["negative"] for a in metadata["oracle_answers"] if a["negative"]}
    assert named == {n["word"] for n in negatives}


def test_added_negatives_are_logged_and_constrain_the_following_steps(adaptive_run):
    log = read_log(adaptive_run / "log.jsonl")
    events = [line for line in log if line.get("event") == "negative"]
    steps = step_lines(log)
    assert [line["step"] for line in steps] == list(range(1, 9))
    for event in events:
        after = steps[event["step"]]  # the step after the one it was added at
        assert event["word"] in after["negative"]
        if event["step"] > 0:
            assert event["word"] not in steps[event["step"] - 1]["negative"]


def test_images_at_every_checkpoint_and_a_strip(adaptive_run):
    images = adaptive_run / "images"
    for step in (0, 2, 4, 6, 8):
        for seed in (42, 500):  # the official three prompts, the oracle's first
            assert Image.open(images / f"step-{step:04d}-seed-{seed}.png").size[0] > 0
            assert all((images / f"prompt-{n}-step-{step:04d}-seed-{seed}.png").exists() for n in (2, 3))
    strip = Image.open(images / "strip.png")
    assert strip.width > strip.height  # one column per step (5), one row per seed (2)


def test_style_mode_asks_for_art_styles(tmp_path, run_cli):
    out = tmp_path / "style"
    code, _, err = run_cli(
        "create", "--category", "art", "--style", *TINY, "--steps", "10", "--every", "5", "--out", out
    )
    assert code == 0, err
    metadata = load_concept(out / "new-art.safetensors").metadata
    assert metadata["config"]["style"] is True
    assert all("style of" in template for template in metadata["config"]["templates"])
    assert {n["word"] for n in metadata["negatives"]} <= set(ART_STYLES)


def test_gradual_negatives_come_one_at_a_time(tmp_path, run_cli):
    out = tmp_path / "gradual"
    args = ("--neg", "cat,dog", "--gradual", "--no-images", "--steps", "20", "--every", "10", "--out", out)
    code, _, err = run_cli("create", "--category", "pet", *TINY, *args)
    assert code == 0, err
    steps = step_lines(read_log(out / "log.jsonl"))
    order = ["cat", "dog"]
    random.Random(0).shuffle(order)  # the official code shuffles them first; here with --seed (0)
    first, second = order
    assert set(steps[0]["negative"]) == {first} and set(steps[-1]["negative"]) == {"cat", "dog"}
    negatives = load_concept(out / "new-pet.safetensors").metadata["negatives"]
    assert negatives == [
        {"word": first, "step": 0, "source": "gradual"},
        {"word": second, "step": 10, "source": "gradual"},
    ]
    assert not (out / "images").exists()


def test_no_adaptive_without_negatives_trains_on_the_positive_only(tmp_path, run_cli):
    out = tmp_path / "plain"
    code, _, err = run_cli("create", "--category", "pet", *TINY, "--no-adaptive", "--no-images", "--steps", "5",
                           "--out", out)  # fmt: skip
    assert code == 0, err
    assert json.loads(json.dumps(load_concept(out / "new-pet.safetensors").metadata["negatives"])) == []


def test_an_oracle_option_with_neg_asks_the_oracle(tmp_path, run_cli):
    out = tmp_path / "neg-and-oracle"
    code, _, err = run_cli("create", "--category", "pet", "--neg", "cat", "--max-negatives", "2", *TINY,
                           "--no-images", "--steps", "4", "--every", "2", "--out", out)  # fmt: skip
    assert code == 0, err
    metadata = load_concept(out / "new-pet.safetensors").metadata
    assert metadata["config"]["adaptive"] is True and metadata["config"]["max_negatives"] == 2
    assert metadata["oracle_answers"] and metadata["negatives"][0] == {"word": "cat", "step": 0, "source": "given"}


@pytest.mark.parametrize(
    "option", [("--oracle", "clip-zeroshot"), ("--oracle-model", "tiny"), ("--ask-every", "5"), ("--vocab", "x.txt")]
)
def test_no_adaptive_with_an_oracle_option_is_refused(tmp_path, run_cli, option):
    out = tmp_path / "refused"
    code, _, err = run_cli("create", "--category", "pet", "--neg", "cat", "--no-adaptive", *option, *TINY, "--out", out)
    assert code == 2 and option[0] in err and "--no-adaptive" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--category", "spaceship"), "No built-in vocabulary for category 'spaceship'"),
        (("--category", "pet", "--vocab", "nope.txt"), "--vocab nope.txt: no such file"),
        (("--category", "pet", "--vocab", "EMPTY"), "lists no words"),
        (("--category", "pet", "--oracle", "gpt-vision"), "Unknown oracle 'gpt-vision'"),
        (("--category", "pet", "--oracle", "blip2", "--vocab", "EMPTY"), "is a word list for clip-zeroshot"),
        (("--category", "pet", "--oracle-model", "tiny"), "clip-zeroshot uses the backend's own CLIP"),
    ],
)
def test_oracle_inputs_are_refused_before_any_model_loads(tmp_path, run_cli, monkeypatch, args, named):
    create_module = importlib.import_module("conceptlab.engine.training.create")  # the package exports `create` too

    def no_loading(*_args, **_kwargs):
        raise AssertionError("a model was loaded before the oracle's inputs were checked")

    monkeypatch.setattr(create_module, "load_prior", no_loading)
    empty = tmp_path / "empty.txt"
    empty.write_text("# no words\n\n", encoding="utf-8")
    out = tmp_path / "run"
    args = [str(empty) if arg == "EMPTY" else arg for arg in args]
    code, _, err = run_cli("create", *args, *TINY, "--out", out)
    assert code == 2 and named in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing claimed: a rerun needs no --force


def _fake_gpu_residency(stack, tiny_decoder, moves):
    """Prior and decoder groups on a fake "cuda" device: the mover records (name, device) and moves nothing."""
    import torch

    from conceptlab.engine.models.offload import Residency

    names = {id(stack.prior): "prior", id(tiny_decoder.pipeline.unet): "decoder"}

    def move(module, device):
        moves.append((names.get(id(module), type(module).__name__), device.type))

    residency = Residency(torch.device("cuda"), offload=True, move=move)
    residency.add("prior", [stack.prior], torch.device("cuda"))
    residency.add("decoder", [tiny_decoder.pipeline.unet], torch.device("cpu"))
    return residency


def _watcher(tiny, tiny_decoder, oracle, residency):
    from conceptlab.engine.adaptive.watcher import ConceptWatcher
    from conceptlab.engine.prior.tokens import add_placeholder_token
    from conceptlab.engine.rendering.render import render_settings
    from conceptlab.engine.training.config import create_config

    stack = tiny.stack
    config = create_config("pet", steps=10)
    add_placeholder_token(stack.tokenizer, stack.text_encoder, config.token, config.initializer)
    settings = render_settings(tiny.backend, steps=2)  # what moves where is checked, not the pictures
    return ConceptWatcher(stack, tiny_decoder, config, settings, None, oracle, residency)


def test_with_offloading_only_the_model_at_work_is_on_the_gpu(tiny, tiny_decoder):
    """A fake mover records moves (nothing leaves the CPU): render brings the decoder in, the oracle gets the
    device alone, and the prior is back before training goes on."""
    import torch

    moves = []
    residency = _fake_gpu_residency(tiny.stack, tiny_decoder, moves)

    class Oracle:
        name = "scripted"
        model = torch.nn.Linear(1, 1)

        def modules(self):
            return [self.model]

        def expected_bytes(self):
            return 8

        def ask(self, images, question, known):
            moves.append(("oracle asked", "-"))
            return ["hamster"] * len(images)

    watcher = _watcher(tiny, tiny_decoder, Oracle(), residency)
    assert watcher.ask(0, []) == ["hamster"]
    assert moves == [
        ("prior", "cpu"), ("decoder", "cuda"),  # render: the decoder alone
        ("decoder", "cpu"), ("prior", "cuda"),  # back to training
        ("prior", "cpu"), ("Linear", "cuda"), ("oracle asked", "-"),  # the oracle alone
        ("Linear", "cpu"), ("prior", "cuda"),
    ]  # fmt: skip


def test_a_loaded_blip2_is_parked_while_the_decoder_and_the_prior_work(tiny, tiny_decoder):
    """The tiny BLIP-2 loads on its first question; from then on it is on the (fake) GPU only to answer."""
    from conceptlab.engine.adaptive.oracle import OracleOptions, load_oracle

    moves = []
    residency = _fake_gpu_residency(tiny.stack, tiny_decoder, moves)
    watcher = _watcher(tiny, tiny_decoder, load_oracle("blip2", tiny, OracleOptions(model="tiny")), residency)
    watcher.ask(0, [])
    watcher.images_at(5)
    watcher.ask(5, [])
    blip2 = "Blip2ForConditionalGeneration"
    assert moves == [
        ("prior", "cpu"), ("decoder", "cuda"), ("decoder", "cpu"), ("prior", "cuda"),  # render step 0
        ("prior", "cpu"),  # the oracle alone: BLIP-2 loads on the device in use
        (blip2, "cpu"), ("prior", "cuda"),  # parked as soon as it has answered
        ("prior", "cpu"), ("decoder", "cuda"), ("decoder", "cpu"), ("prior", "cuda"),  # render step 5
        ("prior", "cpu"), (blip2, "cuda"),  # asked again
        (blip2, "cpu"), ("prior", "cuda"),
    ]  # fmt: skip
    assert residency.where("oracle").type == "cpu"


GB = 10**9


def test_auto_offload_counts_the_oracle_s_weights():
    """Kandinsky 2.2 in float16 on a 16 GB card: the prior (7 GB) is loaded, the decoder (2.6 GB) and BLIP-2
    (7.9 GB) are still to come; with 2 GiB for activations they do not fit, on a 40 GB card they do."""
    from conceptlab.engine.models.offload import offload_needed

    prior, decoder, blip2 = 7 * GB, int(2.6 * GB), int(7.9 * GB)
    assert offload_needed(decoder + blip2, free_bytes=16 * GB - prior)
    assert not offload_needed(decoder + blip2, free_bytes=40 * GB - prior)
    assert not offload_needed(decoder, free_bytes=16 * GB - prior)  # without BLIP-2 all three would stay
    assert not offload_needed(decoder + blip2, free_bytes=None)  # not a CUDA device
    assert not offload_needed(0, free_bytes=1)  # nothing left to bring in


def test_auto_residency_offloads_for_an_oracle_that_would_not_fit(tiny, tiny_decoder, monkeypatch):
    import dataclasses

    import torch

    residency_module = importlib.import_module("conceptlab.engine.models.offload")
    monkeypatch.setattr(residency_module, "free_memory", lambda device: 16 * GB - 7 * GB)
    on_gpu = dataclasses.replace(tiny_decoder, device=torch.device("cuda"))  # its weights stay on the CPU
    auto = residency_module.prior_and_decoder_residency
    assert auto(tiny, on_gpu, None, oracle_bytes=int(7.9 * GB)).offload
    assert not auto(tiny, on_gpu, None, oracle_bytes=0).offload
    assert not auto(tiny, on_gpu, False, oracle_bytes=int(7.9 * GB)).offload  # --no-offload wins


def test_create_counts_the_oracle_s_expected_bytes_before_it_loads(tiny, tiny_decoder, tmp_path, monkeypatch):
    from conceptlab.engine.adaptive.oracle import OracleOptions, load_oracle
    from conceptlab.engine.training.config import create_config
    from conceptlab.engine.training.create import create

    create_module = importlib.import_module("conceptlab.engine.training.create")
    counted = []
    real = create_module.prior_and_decoder_residency

    def spy(loaded, decoder, offload, oracle_bytes=0):
        counted.append(oracle_bytes)
        return real(loaded, decoder, offload, oracle_bytes)

    monkeypatch.setattr(create_module, "prior_and_decoder_residency", spy)
    config = create_config("pet", ("cat",), oracle="blip2", oracle_model="tiny", steps=1, images=False)
    create(config, tiny, out=tmp_path / "run", decoder=tiny_decoder)
    expected = load_oracle("blip2", tiny, OracleOptions(model="tiny")).expected_bytes()
    assert counted == [expected] and expected > 0
