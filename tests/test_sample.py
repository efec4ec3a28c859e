"""`conceptlab sample` end to end on the tiny backend, its refusals, and model residency."""

import hashlib

import pytest
import torch
from torch import nn

from conceptlab.engine.concept.file import Concept, load_concept, save_concept
from conceptlab.engine.models.offload import Residency
from conceptlab.engine.prior.tokens import add_placeholder_token
from conceptlab.engine.rendering.render import render_settings
from conceptlab.engine.rendering.sample import fill_prompt, render_samples
from conceptlab.plugins.tiny.backend import tiny_world_folder

FAST = ("--steps", "3", "--prior-steps", "3", "--model", "tiny", "--device", "cpu")


@pytest.fixture
def concept_file(concept_family):
    """A learned concept for the tiny backend, `<new-pet>`: the session family's first parent (conftest)."""
    return concept_family["a"]


def _digests(paths):
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def test_sample_writes_images_and_grid_and_repeats_bytes(run_cli, concept_file, tmp_path):
    code, out, err = run_cli(
        "sample", concept_file, "--prompt", "a plush toy {}", "-n", "3", "--out", tmp_path / "a", *FAST
    )
    assert code == 0, err
    paths = [line for line in out.splitlines() if line.endswith(".png")]
    assert [p.rsplit("/", 1)[1] for p in paths] == [
        "a-plush-toy-new-pet-seed42-0.png",
        "a-plush-toy-new-pet-seed43-1.png",
        "a-plush-toy-new-pet-seed44-2.png",
        "a-plush-toy-new-pet-seed42-n3-grid.png",
    ]
    first = sorted((tmp_path / "a").glob("*.png"))
    assert len(set(_digests(first[:3]))) == 3  # three seeds, three images

    code, _, err = run_cli(
        "sample", concept_file, "--prompt", "a plush toy {}", "-n", "3", "--out", tmp_path / "b", *FAST
    )
    assert code == 0, err
    assert _digests(first) == _digests(sorted((tmp_path / "b").glob("*.png")))


def test_samples_of_other_seeds_share_a_folder_each_with_its_own_grid(run_cli, concept_file, tmp_path):
    args = ("sample", concept_file, "--prompt", "a plush toy {}", "-n", "2", "--out", tmp_path, *FAST)
    code, first, err = run_cli(*args, "--seed", "42")
    assert code == 0, err
    code, second, err = run_cli(*args, "--seed", "7")
    assert code == 0, err
    grids = sorted(path.name for path in tmp_path.glob("*-grid.png"))
    assert grids == ["a-plush-toy-new-pet-seed42-n2-grid.png", "a-plush-toy-new-pet-seed7-n2-grid.png"]
    assert grids[0] in first and grids[1] in second
    assert len(list(tmp_path.glob("*.png"))) == 6


def test_sample_refuses_to_overwrite_without_force(run_cli, concept_file, tmp_path):
    args = ("sample", concept_file, "--prompt", "{}", "-n", "1", "--no-grid", "--out", tmp_path, *FAST)
    assert run_cli(*args)[0] == 0
    image = next(tmp_path.glob("*.png"))
    image.write_bytes(b"mine")
    code, _, err = run_cli(*args)
    assert code == 2 and "--force" in err and image.read_bytes() == b"mine"
    assert run_cli(*args, "--force")[0] == 0 and image.read_bytes() != b"mine"


def test_two_concepts_with_the_same_token_in_one_prompt(run_cli, concept_file, tmp_path):
    concept = load_concept(concept_file)
    twin = tmp_path / "twin.safetensors"
    save_concept(Concept(concept.token, concept.vector.flip(0), concept.metadata), twin)
    code, out, err = run_cli(
        "sample", concept_file, twin, "--prompt", "{0} and {1} playing", "-n", "1", "--out", tmp_path / "o", *FAST
    )
    assert code == 0, err
    assert "new-pet-and-new-pet-playing-seed42-0.png" in out


def test_a_model_that_knows_the_token_already_samples_it_again_and_again(tiny, tiny_decoder, concept_file, tmp_path):
    """A batch reuses its loaded models: the create job taught the tokenizer `<new-pet>`, then two samples follow."""
    concept = load_concept(concept_file)
    add_placeholder_token(tiny.stack.tokenizer, tiny.stack.text_encoder, concept.token, concept.vector)
    settings = render_settings(tiny.backend, steps=2)
    runs = [
        render_samples([concept], prompt, tiny, tiny_decoder, n=1, settings=settings, out=tmp_path / name, grid=False)
        for name, prompt in (
            ("first", "a plush toy {}"),
            ("again", "a plush toy {}"),
            ("written", "a plush toy <new-pet>"),
        )
    ]
    digests = [_digests(run.images) for run in runs]
    assert digests[0] == digests[1] == digests[2]


def test_fill_prompt():
    assert fill_prompt("a plush toy {}", ["<a>"]) == "a plush toy <a>"
    assert fill_prompt("{1} and {0}", ["<a>", "<b>"]) == "<b> and <a>"
    assert fill_prompt("a photo of <a>", ["<a>"]) == "a photo of <a>"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("MISSING", "--prompt", "{}"), "no such concept file"),
        (("CONCEPT", "--prompt", "a photo of a cat"), "no {} and no concept token"),
        (("CONCEPT", "--prompt", "{}", "-n", "0"), "positive number"),
        (("CONCEPT", "--prompt", "{0} and {1}"), "1 concept(s)"),
        (("CONCEPT", "--prompt", "{}", "--size", "30"), "multiple of 16"),
        (("CONCEPT", "--prompt", "{}", "--decoder", "nonsense"), "Unknown decoder 'nonsense'"),
        (("CONCEPT", "--prompt", "{}", "--model", "TINY", "--backend", "kandinsky-2.2"), "trained for tiny"),
        (("CONCEPT", "--prompt", "a {}", "--steps", "0"), "--steps must be at least 1"),
        (("CONCEPT", "--prompt", "a {}", "--prior-steps", "0"), "--prior-steps must be at least 1"),
        (("CONCEPT", "--prompt", "a {}", "--guidance", "-5"), "--guidance must be a finite number"),
        (("CONCEPT", "--prompt", "a {}", "--prior-guidance", "nan"), "--prior-guidance must be a finite number"),
        (("CONCEPT", "--prompt", "a {}", "--size", "0"), "--size must be a positive"),
        (("CONCEPT", "--prompt", "a {}", "--seed", "-1"), "--seed must be a non-negative integer"),
    ],
)
def test_sample_bad_inputs_are_one_line(run_cli, concept_file, tmp_path, args, message):
    replacements = {"CONCEPT": concept_file, "MISSING": tmp_path / "missing.safetensors", "TINY": tiny_world_folder()}
    args = [str(replacements.get(a, a)) for a in args]
    if "--model" not in args:
        args += ["--model", "tiny"]
    code, _, err = run_cli("sample", *args, "--device", "cpu", "--out", tmp_path)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.png"))


def test_residency_keeps_one_group_on_the_device_when_offloading():
    moves = []
    prior, decoder = nn.Linear(2, 2), nn.Linear(2, 2)
    residency = Residency(torch.device("cuda"), offload=True, move=lambda m, d: moves.append((m, d.type)))
    residency.add("prior", [prior], torch.device("cuda"))
    residency.add("decoder", [decoder], torch.device("cpu"))
    residency.use("prior")
    assert moves == []
    residency.use("decoder")
    assert moves == [(prior, "cpu"), (decoder, "cuda")]
    assert residency.where("prior").type == "cpu" and residency.where("decoder").type == "cuda"


def test_residency_without_offload_only_brings_models_in():
    moves = []
    residency = Residency(torch.device("cuda"), offload=False, move=lambda m, d: moves.append(d.type))
    residency.add("prior", [nn.Linear(2, 2)], torch.device("cuda"))
    residency.add("decoder", [nn.Linear(2, 2)], torch.device("cpu"))
    residency.use("decoder")
    residency.use("prior")
    assert moves == ["cuda"]
    assert residency.where("prior").type == residency.where("decoder").type == "cuda"
