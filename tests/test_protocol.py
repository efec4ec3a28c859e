"""`evaluate --protocol paper --quick` on the tiny backend: table, JSON, CSV and plot, and resuming."""

import csv
import io
import json

import pytest
from PIL import Image

from conceptlab.engine.evaluation.metrics import Summary
from conceptlab.engine.evaluation.protocols.paper import PAPER_NEGATIVE_PAIRS, paper_protocol


def test_paper_protocol_is_the_papers_design():
    config = paper_protocol()
    assert list(config.pairs) == ["pet", "plant", "fruit", "furniture", "musical instrument"]
    assert all(len(pairs) == 3 for pairs in config.pairs.values()) and len(config.seeds) == 5
    assert (config.images_per_concept, config.images_per_pair) == (32, 160)
    assert config.baselines == ("kandinsky-neg", "sd-neg") and config.train_steps is None
    assert all(len(set(pair)) == 2 for pairs in PAPER_NEGATIVE_PAIRS.values() for pair in pairs)


def test_pooled_summary_equals_the_summary_of_all_values():
    first, second = [0.1, 0.4, 0.2], [0.9, 0.5]
    pooled = Summary.pooled([Summary.of(first), Summary.of(second)])
    everything = Summary.of(first + second)
    assert pooled.n == 5
    assert pooled.mean == pytest.approx(everything.mean) and pooled.std == pytest.approx(everything.std)


def test_quick_protocol_writes_table_json_csv_plot_and_resumes(run_cli, tmp_path):
    out = tmp_path / "quick"
    args = ("eval", "--protocol", "paper", "--quick", "--model", "tiny", "--device", "cpu", "--out", out)
    code, stdout, err = run_cli(*args)
    assert code == 0, err
    assert "trained 1 concept(s), reused 0" in stdout and "sd-neg" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert {row["method"] for row in metrics["summary"]} == {"conceptlab", "kandinsky-neg", "sd-neg"}
    concept_row = next(row for row in metrics["rows"] if row["method"] == "conceptlab")
    assert concept_row["negatives"] == ["cat", "dog"] and concept_row["metrics"]["positive"]["n"] == 8
    summary = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    assert [line["category"] for line in summary] == ["pet"] * 3
    assert len(list((out / "images" / "pet-cat-dog-seed0").glob("*.png"))) == 8
    assert Image.open(out / "summary.png").size[0] > 500
    concept_file = out / "concepts" / "pet-cat-dog-seed0" / "pet-cat-dog-seed0.safetensors"
    before = concept_file.stat().st_mtime_ns
    code, stdout, _ = run_cli(*args)
    assert code == 0 and "trained 0 concept(s), reused 1" in stdout
    assert concept_file.stat().st_mtime_ns == before
    assert json.loads((out / "metrics.json").read_text())["summary"] == metrics["summary"]

    # Where it runs is not what it makes: another --device reuses everything.
    code, stdout, err = run_cli(*args[:-4], "--out", out)
    assert code == 0 and "trained 0 concept(s), reused 1" in stdout, err

    # Other render settings meet the earlier renders: kept and refused, then redone with --force.
    image = out / "images" / "pet-cat-dog-seed0" / "0000.png"
    rendered = image.read_bytes()
    code, _, err = run_cli(*args, "--seed", "7")
    assert code == 2 and "add --force" in err and image.read_bytes() == rendered
    table, chart = tmp_path / "summary.csv", tmp_path / "summary.png"
    code, stdout, err = run_cli(*args, "--seed", "7", "--force", "--json", "--csv", table, "--plot", chart)
    assert code == 0, err
    assert image.read_bytes() != rendered
    printed = json.loads(stdout)
    assert {row["method"] for row in printed["rows"]} == {"conceptlab", "kandinsky-neg", "sd-neg"}
    assert [line["method"] for line in csv.DictReader(io.StringIO(table.read_text()))] == [
        row["method"] for row in printed["rows"]
    ]
    assert Image.open(chart).size[0] > 500
    assert concept_file.stat().st_mtime_ns == before


def test_protocol_refuses_options_it_sets_itself(run_cli, tmp_path):
    base = ("eval", "--protocol", "paper", "--quick", "--model", "tiny", "--out", tmp_path / "run")
    for extra, named in ((("--neg", "horse"), "--neg"), (("-n", "3"), "-n"), (("--category", "fruit"), "--category")):
        code, _, err = run_cli(*base, *extra)
        assert code == 2 and named in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(*base, "--max-parallel", "2")
    assert code == 2 and "--ray" in err
    assert not (tmp_path / "run").exists()


def test_protocol_refuses_unknown_names_and_missing_out(run_cli, tmp_path):
    code, _, err = run_cli("eval", "--protocol", "iccv", "--out", tmp_path)
    assert code == 2 and "Unknown protocol" in err
    code, _, err = run_cli("eval", "--protocol", "paper", "--quick", "--model", "tiny")
    assert code == 2 and "--out" in err
    code, _, err = run_cli("eval", "--protocol", "paper", "--quick", "--baseline", "dall-e", "--out", tmp_path)
    assert code == 2 and "Unknown baseline" in err and not list(tmp_path.iterdir())
