"""`conceptlab breed`: generations of evolved children, scored by evaluate, the fittest kept; resumable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conceptlab.engine.batch import runner as batch_module
from conceptlab.engine.batch.breed import BREED_FILE, BreedConfig, breed
from conceptlab.engine.batch.plan import parse_plan
from conceptlab.engine.batch.runner import run_plan
from conceptlab.engine.concept.file import load_concept
from conceptlab.engine.errors import ConceptLabError, UsageError

SEEDS_PLAN = "\n".join(
    f'[[job]]\nname = "{name}"\nrun = "create"\ncategory = "pet"\nneg = ["{neg}"]\nseed = {seed}\n'
    'steps = 3\nimages = false\nmodel = "tiny"\ndevice = "cpu"\n'
    for seed, (name, neg) in enumerate([("fluff", "cat"), ("scale", "dog"), ("wing", "parrot")])
)
JOB_OPTIONS = {
    "device": "cpu",
    "dtype": "auto",
    "steps": 3,
    "images": False,
    "images_per_parent": 2,
    "image_steps": 2,
}  # plumbing
RUN_OPTIONS = {"default_model": "tiny"}


@pytest.fixture(scope="module")
def bred(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("breed")
    seeds = run_plan(parse_plan(SEEDS_PLAN, folder, folder / "seeds"), "tiny")
    paths = [seeds.out / seeds.records[name].concept for name in ("fluff", "scale", "wing")]
    config = BreedConfig(population=3, generations=2, children=2, eval_images=2, job_options=JOB_OPTIONS)
    result = breed(paths, config, folder / "bred", RUN_OPTIONS)
    return {"folder": folder, "seeds": paths, "config": config, "result": result}


def _scores(out: Path, generation: int) -> dict[str, tuple[float, float]]:
    rows = json.loads((out / f"score-g{generation}" / "metrics.json").read_text())["rows"]
    return {row["name"]: (row["metrics"]["novelty"]["mean"], row["metrics"]["positive"]["mean"]) for row in rows}


def test_each_generation_keeps_the_fittest_of_parents_and_children(bred):
    result = bred["result"]
    assert len(result.populations) == 3
    for number in (1, 2):
        previous, current = result.populations[number - 1], result.populations[number]
        children = [m for m in current if m.generation == number]
        born = {record for record in result.batches[number].records if record.startswith(f"g{number}-")}
        assert len(born) == 2 and {m.name for m in children} <= born
        candidates = {m.name: m.fitness for m in previous}
        scores = _scores(result.out, number)
        for name in born:
            token = f"<{name}>"
            candidates[name] = round(sum(scores[token]), 6)
        best = sorted(candidates, key=lambda name: -candidates[name])[:3]
        assert [m.name for m in current] == best
        assert [m.fitness for m in current] == sorted((m.fitness for m in current), reverse=True)


def test_children_descend_from_the_population_they_were_bred_from(bred):
    result = bred["result"]
    for number in (1, 2):
        names = {m.name for m in result.populations[number - 1]}
        for member in (m for m in result.populations[number] if m.generation == number):
            assert set(member.parents) <= names and len(member.parents) == 2
            child = load_concept(result.out / member.concept)
            assert len(child.metadata["parents"]) == 2 and len(child.metadata["lineage"]) == 2


def test_breed_json_records_every_generation(bred):
    record = json.loads((bred["result"].out / BREED_FILE).read_text())
    assert record["category"] == "pet"
    assert [[m["name"] for m in generation] for generation in record["generations"]] == [
        [m.name for m in population] for population in bred["result"].populations
    ]


def test_rerun_reuses_every_child(bred):
    again = breed(bred["seeds"], bred["config"], bred["result"].out, RUN_OPTIONS)
    statuses = {record.status for batch in again.batches for record in batch.records.values()}
    assert statuses == {"reused"}
    assert [[m.name for m in p] for p in again.populations] == [[m.name for m in p] for p in bred["result"].populations]


def test_cli_breed_maps_its_flags_to_the_engine_config_and_prints_each_generation(bred, run_cli, tmp_path):
    """The CLI rerun of the fixture's breed reuses every job: its flags build the same jobs as `BreedConfig` did."""
    out = tmp_path / "b"
    shutil.copytree(bred["result"].out, out)
    code, stdout, err = run_cli(
        "breed", *bred["seeds"], "--population", "3", "--generations", "2", "--children", "2", "--steps", "3",
        "--images-per-parent", "2", "--image-steps", "2", "-n", "2", "--no-images", "--device", "cpu", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert "generation 1" in stdout and "generation 2" in stdout and "fittest:" in stdout
    assert err.count("score-g0") == 1  # each job reported once, not again when the next generation reuses it
    assert "reused" in err and "done" not in err.replace("reused", "")
    record = json.loads((out / BREED_FILE).read_text())
    assert record == json.loads((bred["result"].out / BREED_FILE).read_text())


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"population": 1}, "--population must be at least 2"), ({"generations": 0}, "--generations must be at least 1")],
)
def test_bad_breed_settings_are_refused(changes, message):
    with pytest.raises(UsageError, match=message):
        BreedConfig(**changes)


def test_breed_needs_two_existing_seeds(tmp_path):
    with pytest.raises(UsageError, match="at least two seed concepts"):
        breed([tmp_path / "a.safetensors"], BreedConfig(), tmp_path, RUN_OPTIONS)
    with pytest.raises(UsageError, match="No concept file at"):
        breed([tmp_path / "a.safetensors", tmp_path / "b.safetensors"], BreedConfig(), tmp_path, RUN_OPTIONS)


def test_a_generation_whose_children_fail_stops_with_one_line_naming_the_child(bred, tmp_path, monkeypatch):
    real_run_job = batch_module.run_job

    def failing_children(job, *args, **kwargs):
        if job.run == "evolve":
            raise RuntimeError("out of memory")
        return real_run_job(job, *args, **kwargs)

    monkeypatch.setattr(batch_module, "run_job", failing_children)
    config = BreedConfig(population=2, generations=1, children=1, eval_images=2, job_options=JOB_OPTIONS)
    with pytest.raises(ConceptLabError, match=r"Generation 1 did not finish \(g1-01: RuntimeError: out of memory\)"):
        breed(bred["seeds"][:2], config, tmp_path / "failing", RUN_OPTIONS)
    assert (tmp_path / "failing" / "score-g0" / "metrics.json").is_file()  # the seeds' scores are kept for a rerun
