"""`conceptlab create`, `mix`, `info` and `demo` end to end on the tiny backend."""

import hashlib
import json
import os
import statistics
import subprocess
import sys

import pytest

from conceptlab.engine.concept.file import Concept, load_concept, save_concept
from conceptlab.engine.training.run_folder import read_log

TINY = ("--model", "tiny", "--device", "cpu")


def _tree_hashes(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def pet_run(tmp_path_factory):
    """The issue's reference run: 200 steps, seed 0, negatives cat and dog (no renders: no test here reads them)."""
    out = tmp_path_factory.mktemp("pet")
    from conceptlab.cli.app import main

    code = main(
        [
            "create",
            "--category",
            "pet",
            "--neg",
            "cat,dog",
            *TINY,
            "--steps",
            "200",
            "--seed",
            "0",
            "--every",
            "50",
            "--no-images",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def test_create_lowers_max_negative_similarity_and_loss(pet_run):
    log = read_log(pet_run / "log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 201))
    head, tail = log[:30], log[-30:]
    max_negative = [max(r["negative"].values()) for r in log]
    assert statistics.fmean(max_negative[-30:]) < statistics.fmean(max_negative[:30]) - 0.03
    assert statistics.fmean(r["loss"] for r in tail) < statistics.fmean(r["loss"] for r in head)
    assert set(log[0]["positive"]) == {"pet"} and set(log[0]["negative"]) == {"cat", "dog"}
    assert len({r["template"] for r in log}) > 1  # one of the official templates drawn per step


def test_create_writes_concept_checkpoints_and_plot(pet_run):
    concept = load_concept(pet_run / "new-pet.safetensors")
    meta = concept.metadata
    assert concept.token == "<new-pet>" and meta["kind"] == "create" and meta["category"] == "pet"
    assert meta["negatives"] == [{"word": w, "step": 0, "source": "given"} for w in ("cat", "dog")]
    assert meta["config"]["steps"] == 200 and meta["config"]["learning_rate"] == meta["learning_rate"] > 0
    assert meta["backend"] == "tiny" and meta["embedding_dim"] == 64 and meta["parents"] == []
    assert meta["final_similarities"]["negative"]["cat"] < 0.25
    checkpoints = sorted(p.name for p in (pet_run / "checkpoints").iterdir())
    assert checkpoints == [
        "state.safetensors",
        "step-0050.safetensors",
        "step-0100.safetensors",
        "step-0150.safetensors",
        "step-0200.safetensors",
    ]
    assert load_concept(pet_run / "checkpoints" / "step-0200.safetensors").sha256 == concept.sha256
    assert load_concept(pet_run / "checkpoints" / "step-0050.safetensors").sha256 != concept.sha256
    assert (pet_run / "similarities.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_gives_same_bytes(run_cli, tmp_path):
    shas = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        code, _, err = run_cli(
            "create",
            "--category",
            "pet",
            "--neg",
            "cat",
            *TINY,
            "--steps",
            "10",
            "--seed",
            seed,
            "--out",
            tmp_path / name,
        )
        assert code == 0, err
        shas.append(load_concept(tmp_path / name / "new-pet.safetensors").sha256)
    assert shas[0] == shas[1] != shas[2]
    a, b = (read_log(tmp_path / n / "log.jsonl") for n in "ab")
    assert a == b


def test_refuses_to_overwrite_a_run_without_force(run_cli, pet_run):
    before = _tree_hashes(pet_run)
    code, _, err = run_cli("create", "--category", "pet", *TINY, "--steps", "5", "--out", pet_run)
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1
    assert _tree_hashes(pet_run) == before


def test_force_replaces_a_run(run_cli, tmp_path):
    args = ("create", "--category", "pet", "--neg", "cat", *TINY, "--no-images", "--out", tmp_path)
    assert run_cli(*args, "--steps", "10", "--every", "5")[0] == 0
    assert run_cli(*args, "--steps", "6", "--force")[0] == 0
    assert len(read_log(tmp_path / "log.jsonl")) == 6
    # the old run's checkpoints are gone; the state is the new run's, saved at its last step
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "state.safetensors",
        "step-0006.safetensors",
    ]


def test_mix_blends_weighted_positives_without_negatives(run_cli, tmp_path):
    args = ("--weights", "3,1", *TINY, "--steps", "30", "--no-images", "--out", tmp_path)
    code, out, err = run_cli("mix", "lobster", "turtle", *args)
    assert code == 0, err
    concept = load_concept(tmp_path / "lobster-turtle.safetensors")
    assert concept.metadata["kind"] == "mix" and concept.metadata["negatives"] == []
    assert concept.metadata["positives"] == ["lobster", "turtle"]
    assert concept.metadata["weights"] == [0.75, 0.25]
    assert concept.metadata["initializer"] == "lobster"
    log = read_log(tmp_path / "log.jsonl")
    assert set(log[0]["positive"]) == {"lobster", "turtle"} and log[0]["negative"] == {}
    assert "lobster-turtle.safetensors" in out


def test_info_shows_the_metadata(run_cli, pet_run):
    code, out, _ = run_cli("info", pet_run / "new-pet.safetensors", "--json")
    data = json.loads(out)
    assert code == 0 and data["token"] == "<new-pet>" and data["negatives"][0]["word"] == "cat"
    code, out, _ = run_cli("info", pet_run / "new-pet.safetensors")
    assert code == 0 and "cat (step 0)" in out and data["sha256"][:16] in out.replace("\n", "")


def test_info_shows_the_run_config_and_prints_markup_like_text_as_is(run_cli, pet_run, tmp_path):
    concept = load_concept(pet_run / "new-pet.safetensors")
    markup = "[bold red]x[/] [/oops]"
    save_concept(Concept(concept.token, concept.vector, {**concept.metadata, "category": markup}), tmp_path / "c.st")
    code, out, err = run_cli("info", tmp_path / "c.st")
    assert code == 0, err
    assert markup in out and "conceptlab.format" in out
    assert "weight_decay" in out and "negative_clamp" in out and "positive_lambda" in out  # the config as it ran


def test_a_token_with_brackets_trains_and_prints(run_cli, tmp_path):
    code, out, err = run_cli(
        "create", "--category", "pet", "--neg", "cat", "--token", "<x[/y]>", *TINY, "--steps", "2", "--out", tmp_path
    )
    assert code == 0, err
    assert "<x[/y]>" in out and "Traceback" not in err


def test_objective_options_reach_the_loss(run_cli, tmp_path):
    options = ("--positive-clamp", "0.5", "--negative-clamp", "0.1", "--lambda", "2")
    code, _, err = run_cli(
        "create",
        "--category",
        "pet",
        "--neg",
        "cat,dog",
        *TINY,
        "--steps",
        "3",
        *options,
        "--no-images",
        "--out",
        tmp_path,
    )
    assert code == 0, err
    config = load_concept(tmp_path / "new-pet.safetensors").metadata["config"]
    assert (config["positive_clamp"], config["negative_clamp"], config["positive_lambda"]) == (0.5, 0.1, 2.0)
    for line in read_log(tmp_path / "log.jsonl"):
        negatives = [max(value, 0.1) for value in line["negative"].values()]
        expected = 2 * (1 - min(line["positive"]["pet"], 0.5)) + 0.5 * (statistics.mean(negatives) + max(negatives))
        assert line["loss"] == pytest.approx(expected, abs=1e-5)


def test_demo_never_replaces_an_earlier_demo(run_cli, tmp_path):
    base = tmp_path / "demo"
    assert run_cli("demo", "--steps", "5", "--out", base)[0] == 0
    assert run_cli("demo", "--steps", "5", "--out", base)[0] == 0
    assert (base / "new-pet.safetensors").exists() and (tmp_path / "demo-2" / "new-pet.safetensors").exists()


def test_demo_ends_with_its_strip_what_the_oracle_named_and_how_the_renders_read(run_cli, stack, tmp_path):
    """The printed scores are clip-zeroshot's, averaged over the first and last checkpoints' renders, recomputed
    here for the category and each negative."""
    from PIL import Image

    from conceptlab.plugins.oracles.clip_zeroshot import zero_shot_scores

    # the demo keeps a checkpoint every 100 steps and at its last: 101 steps give two, 100 and 101
    code, out, _ = run_cli("demo", "--steps", "101", "--out", tmp_path / "demo")
    assert code == 0
    lines = out.splitlines()
    strip = next(line for line in lines if line.startswith("Strip of renders: ")).removeprefix("Strip of renders: ")
    assert Image.open(strip).size[0] > 32
    negatives = load_concept(tmp_path / "demo" / "new-pet.safetensors").metadata["negatives"]
    named = [f"{n['word']} (step {n['step']})" for n in negatives if n["source"] == "oracle"]
    assert named and f"The oracle named: {', '.join(named)}" in lines
    words = ["pet", *(n["word"] for n in negatives)]
    assert words[1:3] == ["cat", "dog"]
    images = tmp_path / "demo" / "images"
    first, last = (
        zero_shot_scores(stack, [Image.open(p) for p in sorted(images.glob(f"*step-{step:04d}-seed-*.png"))], words)
        for step in (100, 101)
    )
    assert len(first) == len(last) == 6  # 3 prompts x 2 seeds
    for index, word in enumerate(words):
        role = "+" if index == 0 else "-"
        expected = f"  {role} {word:<12} {first[:, index].mean().item():+.3f} -> {last[:, index].mean().item():+.3f}"
        assert expected in lines


def test_missing_weights_exit_1_with_one_line(run_cli, tmp_path):
    code, _, err = run_cli(
        "create", "--category", "pet", "--model", "kandinsky-2.2", "--device", "cpu", "--out", tmp_path
    )
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "kandinsky-community/kandinsky-2-2-prior" in err and "--model tiny" in err


def test_console_script_runs_end_to_end(tmp_path):
    command = [sys.executable, "-c", "from conceptlab.cli.app import run; run()"]
    result = subprocess.run(
        [
            *command,
            "create",
            "--category",
            "fruit",
            "--neg",
            "apple",
            *TINY,
            "--steps",
            "2",
            "--no-images",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "new-fruit.safetensors" in result.stdout
    assert load_concept(tmp_path / "new-fruit.safetensors").metadata["category"] == "fruit"


def test_help_lists_every_command_and_prints_no_warnings():
    command = [sys.executable, "-c", "from conceptlab.cli.app import run; run()", "--help"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "120"})
    assert result.returncode == 0 and result.stderr == ""
    for name in ("create", "mix", "evolve", "sample", "evaluate", "info", "lineage", "verify", "bench", "demo"):
        assert f" {name} " in result.stdout
