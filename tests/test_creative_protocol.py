"""`eval --protocol creative --quick --model tiny`: every method's rows, the summary, the judge, the figure, and
resuming without training or rendering again."""

import csv
import io
import json

import pytest
import torch

from conceptlab.engine.evaluation.metrics import total_variance, vendi_score
from conceptlab.engine.evaluation.protocols.creative import (
    CREATIVE_CATEGORIES,
    METHODS,
    creative_protocol,
)
from conceptlab.engine.io.images import load_images
from conceptlab.plugins.tiny.clip import TinyClipEvaluator

METHOD_NAMES = ["concept", "imagine", "plain", "kandinsky-neg", "sd-neg"]


def test_creative_protocol_is_the_follow_ups_design():
    config = creative_protocol()
    assert config.categories == CREATIVE_CATEGORIES == ("pet", "plant", "garment", "vehicle")
    assert (config.images, config.images_per_concept, len(config.concept_seeds)) == (100, 10, 10)
    assert list(config.methods) == METHOD_NAMES and set(config.methods) <= set(METHODS)
    quick = creative_protocol(quick=True)
    assert quick.categories == ("pet",) and quick.images == 8 and len(quick.concept_seeds) == 1


def test_quick_creative_protocol_writes_every_method_and_resumes(run_cli, tmp_path):
    out = tmp_path / "creative"
    args = ("eval", "--protocol", "creative", "--quick", "--model", "tiny", "--device", "cpu", "--out", out)
    code, stdout, err = run_cli(*args)
    assert code == 0, err
    assert "trained 1 concept(s), reused 0" in stdout and "judge clip-zeroshot" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["judge"]["questions"] == {"validity": "Is this a {}?", "vqa-novelty": "What kind of {} is this?"}
    assert [row["method"] for row in metrics["summary"]] == METHOD_NAMES
    summary = {line["method"]: line for line in csv.DictReader(io.StringIO((out / "summary.csv").read_text()))}
    for method in METHOD_NAMES:
        line = summary[method]
        assert line["category"] == "pet" and line["positive_n"] == "8"
        for metric in ("typicality", "vendi", "variance", "validity", "vqa-novelty", "render-seconds"):
            assert line[f"{metric}_mean"], f"{method} has no {metric}"
        assert 0 <= float(line["validity_mean"]) <= 1 and float(line["render-seconds_mean"]) > 0
    assert summary["concept"]["train-seconds_mean"] and not summary["plain"]["train-seconds_mean"]

    # The summary's set-level metrics are those of all the method's images, by hand with the same CLIP.
    clip = TinyClipEvaluator().load("tiny", torch.device("cpu"), torch.float32)
    plain = clip.embed_images(load_images(out / "images" / "plain" / "pet"))
    assert float(summary["plain"]["vendi_mean"]) == pytest.approx(vendi_score(plain), abs=1e-5)
    assert float(summary["plain"]["variance_mean"]) == pytest.approx(total_variance(plain), abs=1e-5)
    batch = json.loads((out / "batch.json").read_text())
    assert float(summary["concept"]["train-seconds_mean"]) == pytest.approx(batch["jobs"][0]["seconds"], abs=1e-5)
    assert (out / "rows.csv").read_text().count("\n") == 1 + len(METHOD_NAMES)
    assert (out / "summary.png").read_bytes().startswith(b"\x89PNG")

    # imagine ran on the same backend, with its own record of the negatives each image gathered.
    record = json.loads((out / "images" / "imagine" / "pet" / "imagine.json").read_text())
    assert [image["seed"] for image in record["images"]] == list(range(8))
    imagined = out / "images" / "imagine" / "pet" / "0.png"

    image = out / "images" / "concept" / "pet-seed0" / "0000.png"
    before, imagined_before = image.stat().st_mtime_ns, imagined.stat().st_mtime_ns
    plot = tmp_path / "creative.svg"
    code, stdout, err = run_cli(*args, "--json", "--plot", plot)
    assert code == 0, err
    assert image.stat().st_mtime_ns == before and plot.read_bytes().startswith(b"<?xml")
    assert imagined.stat().st_mtime_ns == imagined_before
    printed = json.loads(stdout)
    assert printed["judge"]["name"] == "clip-zeroshot" and len(printed["rows"]) == len(METHOD_NAMES)
    assert json.loads((out / "metrics.json").read_text())["summary"] == metrics["summary"]


def test_creative_protocol_refuses_what_it_sets_itself_and_unknown_judges(run_cli, tmp_path):
    base = ("eval", "--protocol", "creative", "--quick", "--model", "tiny", "--out", tmp_path / "run")
    code, _, err = run_cli(*base, "--category", "fruit")
    assert code == 2 and "--protocol creative sets its own --category" in err
    code, _, err = run_cli(
        "eval", "--protocol", "creative", "--quick", "--model", "kandinsky-2.1", "--out", tmp_path / "run"
    )
    assert code == 2 and "imagine cannot steer kandinsky-2.1" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(*base, "--judge", "gpt-9")
    assert code == 2 and "gpt-9" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("eval", "--protocol", "paper", "--quick", "--judge", "blip2", "--out", tmp_path / "p")
    assert code == 2 and "--judge" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "p").exists()
