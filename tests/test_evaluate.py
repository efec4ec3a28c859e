"""`conceptlab evaluate` / `eval` end to end: folders, concepts, parents, baselines, outputs and errors."""

import csv
import io
import json

import pytest
import torch
from PIL import Image

from conceptlab.cli.app import app
from conceptlab.engine.concept.file import Concept, save_concept
from conceptlab.engine.evaluation.evaluators import load_clip
from conceptlab.engine.evaluation.metrics import EvaluationTarget, Evaluator

TINY_CLIP = ("--clip", "tiny", "--device", "cpu")


def _write_images(folder, colors):
    folder.mkdir(parents=True, exist_ok=True)
    for index, color in enumerate(colors):
        Image.new("RGB", (24, 24), color).save(folder / f"{index}.png")
    return folder


@pytest.fixture
def pets(tmp_path):
    return _write_images(tmp_path / "pets", [(200, 30, 30), (30, 200, 30), (30, 30, 200), (120, 120, 20)])


def _concept_file(tmp_path, **metadata):
    path = tmp_path / "concept.safetensors"
    base = {"category": "pet", "negatives": [{"word": "cat", "step": 0}, {"word": "hamster", "step": 250}]}
    # a file records one lineage entry per parent (a file that does not is refused as damaged)
    base["lineage"] = [{"token": p["token"], "parents": [], "lineage": []} for p in metadata.get("parents", [])]
    save_concept(Concept("<new-pet>", torch.ones(64), {**base, "backend": "tiny", **metadata}), path)
    return path


def test_evaluate_and_eval_are_the_same_command(run_cli, pets):
    args = ("--images", pets, "--category", "pet", "--neg", "cat,dog", *TINY_CLIP, "--json")
    code_long, out_long, _ = run_cli("evaluate", *args)
    code_short, out_short, _ = run_cli("eval", *args)
    assert code_long == code_short == 0
    assert json.loads(out_long) == json.loads(out_short)
    commands = {command.name: command.callback for command in app.registered_commands}
    assert commands["eval"] is commands["evaluate"]
    assert "--baseline" in run_cli("eval", "--help")[1]


def test_folder_metrics_match_the_library_under_the_tiny_clip(run_cli, pets):
    code, out, _ = run_cli("eval", "--images", pets, "--category", "pet", "--neg", "cat,dog", *TINY_CLIP, "--json")
    assert code == 0
    (row,) = json.loads(out)["rows"]
    images = [Image.open(path).convert("RGB") for path in sorted(pets.iterdir())]
    clip = load_clip("tiny", torch.device("cpu"), torch.float32)
    expected = Evaluator(clip).evaluate("pets", images, EvaluationTarget("pet", ("cat", "dog")))
    assert row["metrics"]["negative"]["mean"] == pytest.approx(expected.metrics["negative"].mean, abs=1e-5)
    assert row["metrics"]["positive"]["n"] == 4 and row["metrics"]["diversity"]["n"] == 6
    assert row["metrics"]["vendi"]["mean"] == pytest.approx(expected.metrics["vendi"].mean, abs=1e-5)
    assert row["metrics"]["vendi"]["std"] is None and row["metrics"]["vendi"]["n"] == 4
    # pet has a built-in vocabulary, so novelty and typicality; no judge, so no validity
    assert set(row["metrics"]) == {"positive", "negative", "novelty", "typicality", "diversity", "vendi", "variance"}


def test_a_judge_answers_validity_and_vqa_novelty_and_is_recorded(run_cli, pets):
    args = ("eval", "--images", pets, "--category", "pet", "--model", "tiny", *TINY_CLIP)
    code, out, err = run_cli(*args, "--judge", "clip-zeroshot", "--json")
    assert code == 0, err
    printed = json.loads(out)
    assert printed["judge"] == {
        "name": "clip-zeroshot",
        "questions": {"validity": "Is this a {}?", "vqa-novelty": "What kind of {} is this?"},
    }
    metrics = printed["rows"][0]["metrics"]
    assert metrics["validity"]["n"] == 4 and metrics["validity"]["mean"] in (0, 0.25, 0.5, 0.75, 1)
    assert metrics["vqa-novelty"]["mean"] == 0  # clip-zeroshot names known members only
    code, _, err = run_cli(*args, "--judge", "gpt-9")
    assert code == 2 and "gpt-9" in err and len(err.strip().splitlines()) == 1


def test_concept_negatives_given_and_adaptive_are_the_default(run_cli, tmp_path, pets):
    code, out, _ = run_cli("eval", _concept_file(tmp_path), "--images", pets, *TINY_CLIP, "--json")
    assert code == 0
    (row,) = json.loads(out)["rows"]
    assert row["name"] == "<new-pet>" and row["category"] == "pet" and row["negatives"] == ["cat", "hamster"]
    code, out, _ = run_cli("eval", _concept_file(tmp_path), "--images", pets, "--neg", "dog", *TINY_CLIP, "--json")
    assert json.loads(out)["rows"][0]["negatives"] == ["dog"]


def test_parent_similarity_uses_recorded_weights(run_cli, tmp_path, pets):
    parents = [{"token": "<a>", "sha256": "0", "weight": 0.8}, {"token": "<b>", "sha256": "1", "weight": 0.2}]
    concept = _concept_file(tmp_path, parents=parents)
    first = _write_images(tmp_path / "parent-a", [(200, 30, 30)])
    second = _write_images(tmp_path / "parent-b", [(10, 10, 10), (250, 250, 250)])
    args = ("eval", concept, "--images", pets, "--parent-images", first, "--parent-images", second, *TINY_CLIP)
    code, out, _ = run_cli(*args, "--json")
    assert code == 0
    (row,) = json.loads(out)["rows"]
    assert {name: entry["weight"] for name, entry in row["parents"].items()} == {"parent-a": 0.8, "parent-b": 0.2}
    weighted = sum(entry["weight"] * entry["similarity"]["mean"] for entry in row["parents"].values())
    assert row["metrics"]["parent"]["mean"] == pytest.approx(weighted, abs=1e-5)
    code, out, _ = run_cli(*args, "--weights", "0.5,0.5", "--json")
    assert [entry["weight"] for entry in json.loads(out)["rows"][0]["parents"].values()] == [0.5, 0.5]


def test_parents_whose_images_are_not_here_are_named_not_silently_dropped(run_cli, tmp_path, pets):
    parents = [{"token": "<a>", "sha256": "f" * 64, "weight": 1.0}]
    code, out, err = run_cli("eval", _concept_file(tmp_path, parents=parents), "--images", pets, *TINY_CLIP, "--json")
    assert code == 0
    assert "parent similarity is left out" in err and "--parent-images" in err
    assert "parent" not in json.loads(out)["rows"][0]["metrics"]
    code, _, err = run_cli("eval", _concept_file(tmp_path), "--images", pets, *TINY_CLIP, "--json")
    assert code == 0 and "parent similarity" not in err


def test_writes_csv_and_plot_and_refuses_to_overwrite(run_cli, tmp_path, pets):
    table, chart = tmp_path / "out" / "metrics.csv", tmp_path / "out" / "metrics.png"
    args = ("eval", "--images", pets, "--category", "pet", "--neg", "cat,dog", *TINY_CLIP, "--csv", table)
    code, out, _ = run_cli(*args, "--plot", chart)
    assert code == 0 and "pets" in out and "positive" in out
    (line,) = list(csv.DictReader(io.StringIO(table.read_text())))
    assert line["name"] == "pets" and line["negatives"] == "cat;dog" and int(line["positive_n"]) == 4
    assert -1 <= float(line["negative_mean"]) <= 1 and line["parent_mean"] == ""
    assert Image.open(chart).size[0] > 500
    before = table.read_bytes()
    code, _, err = run_cli(*args)
    assert code == 2 and "already exists" in err and "--force" in err and table.read_bytes() == before


def test_errors_are_one_line(run_cli, tmp_path, pets):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    foreign = _concept_file(tmp_path, backend="kandinsky-2.2", model="kandinsky-community/kandinsky-2-2-prior")
    cases = [
        (("eval", foreign, "--model", "tiny", "-n", "2", *TINY_CLIP), "was trained for kandinsky-2.2", 2),
        (("eval", "--images", empty, "--category", "pet", *TINY_CLIP), "holds no images", 2),
        (("eval", "--images", pets, "--category", "pet", "--baseline", "dall-e", *TINY_CLIP), "Unknown baseline", 2),
        (("eval", "--images", pets, *TINY_CLIP), "--category", 2),
        (("eval", *TINY_CLIP), "Nothing to evaluate", 2),
        # a model that cannot be loaded is a backend error (exit 1), as in create
        (("eval", "--images", pets, "--category", "pet", "--clip", str(tmp_path / "no-clip")), "Could not load", 1),
    ]
    for args, message, expected_code in cases:
        code, _, err = run_cli(*args)
        assert code == expected_code and message in err and len(err.splitlines()) == 1, (args, err)
