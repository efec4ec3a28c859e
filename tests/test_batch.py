"""`conceptlab batch`: a plan of jobs runs the same here and on a real local Ray, resumes, retries, reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conceptlab.cli.batch import expand_ray_flag
from conceptlab.engine.batch import runner as batch_module
from conceptlab.engine.batch.plan import parse_plan, read_plan
from conceptlab.engine.batch.runner import RECORDS_FOLDER, SUMMARY_FILE, run_plan
from conceptlab.engine.concept.file import load_concept
from conceptlab.engine.errors import UsageError

FAMILY_PLAN = """
[plan]
out = "out"
model = "tiny"
device = "cpu"
steps = 3  # plumbing: training and the evaluate job's renders (decoder steps) stay short
images = false

[[job]]
name = "a"
run = "create"
category = "pet"
neg = ["cat", "dog"]

[[job]]
name = "b"
run = "create"
category = "pet"
neg = "hamster"
seed = 1

[[job]]
name = "child"
run = "evolve"
parents = ["a", "b"]
weights = [3, 1]
images_per_parent = 2

[[job]]
name = "scores"
run = "evaluate"
concepts = ["a", "b", "child"]
n = 2

[[job]]
name = "broken"
run = "create"
category = "pet"
neg = ["cat"]
adaptive = true
oracle = "no-such-oracle"

[[job]]
name = "after-broken"
run = "sample"
concepts = ["broken"]
prompt = "a {} on a sofa"
"""

CONCEPTS = ("a/a.safetensors", "b/b.safetensors", "child/child.safetensors")


def _write_plan(folder: Path, text: str = FAMILY_PLAN) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "plan.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def family_runs(tmp_path_factory) -> dict:
    """The family plan run once here and once on a local Ray (`ray.init(num_cpus=2)`), same creation time."""
    folder = tmp_path_factory.mktemp("batch")
    plan_path = _write_plan(folder)
    os.environ["SOURCE_DATE_EPOCH"] = "1700000000"
    try:
        local = run_plan(read_plan(plan_path), "tiny")
        on_ray = run_plan(read_plan(plan_path, folder / "out-ray"), "tiny", ray=True, max_parallel=2)
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    return {"folder": folder, "plan": plan_path, "local": local, "ray": on_ray}


def test_plan_runs_identically_with_and_without_ray(family_runs):
    local, on_ray = family_runs["local"], family_runs["ray"]
    for result in (local, on_ray):
        assert [result.records[name].status for name in ("a", "b", "child", "scores")] == ["done"] * 4
    assert on_ray.mode == "ray" and on_ray.records["a"].where != "local"
    for relative in (*CONCEPTS, "scores/metrics.json", "scores/rows.csv"):
        assert (local.out / relative).read_bytes() == (on_ray.out / relative).read_bytes(), relative


def test_evolve_job_records_plan_relative_parents(family_runs):
    child = load_concept(family_runs["local"].out / "child/child.safetensors")
    parents = child.metadata["parents"]
    assert [p["path"] for p in parents] == ["a/a.safetensors", "b/b.safetensors"]
    assert [p["weight"] for p in parents] == [0.75, 0.25]
    for parent, relative in zip(parents, CONCEPTS[:2], strict=False):
        assert parent["sha256"] == load_concept(family_runs["local"].out / relative).sha256


def test_evaluate_job_scores_every_concept_and_the_childs_parents(family_runs):
    rows = json.loads((family_runs["local"].out / "scores/metrics.json").read_text())["rows"]
    assert [row["name"] for row in rows] == ["<a>", "<b>", "<child>"]
    out = family_runs["local"].out
    assert [row["sha256"] for row in rows] == [load_concept(out / relative).sha256 for relative in CONCEPTS]
    assert {"positive", "negative", "novelty", "diversity"} <= set(rows[0]["metrics"])
    assert "negative" not in rows[2]["metrics"]  # an evolved child has parents, not negatives
    assert any(key.startswith("parent") for key in rows[2]["metrics"])


def test_failed_job_is_tried_twice_and_blocks_what_waits_for_it(family_runs):
    for result in (family_runs["local"], family_runs["ray"]):
        broken, after = result.records["broken"], result.records["after-broken"]
        assert (broken.status, broken.attempts) == ("failed", 2)
        assert "no-such-oracle" in broken.error
        assert after.status == "blocked" and "broken" in after.error
        assert result.failed == ["broken", "after-broken"]
        summary = json.loads((result.out / SUMMARY_FILE).read_text())
        assert {job["name"]: job["status"] for job in summary["jobs"]}["after-broken"] == "blocked"


def test_rerun_reuses_finished_jobs_without_rewriting_them(family_runs, tmp_path):
    out = family_runs["local"].out
    before = {relative: (out / relative).stat().st_mtime_ns for relative in CONCEPTS}
    again = run_plan(read_plan(family_runs["plan"]), "tiny")
    assert [again.records[name].status for name in ("a", "b", "child", "scores")] == ["reused"] * 4
    assert {relative: (out / relative).stat().st_mtime_ns for relative in CONCEPTS} == before
    assert again.records["broken"].attempts == 2  # a failed job is tried again on a rerun


def test_changed_job_keeps_its_outputs_unless_forced(tmp_path):
    plan_text = '[plan]\nout = "out"\nmodel = "tiny"\nsteps = 3\nimages = false\n\n'
    job = '[[job]]\nname = "a"\nrun = "create"\ncategory = "pet"\nneg = ["cat"]\n'
    first = run_plan(read_plan(_write_plan(tmp_path, plan_text + job)), "tiny")
    concept = first.out / first.records["a"].concept
    original = concept.read_bytes()
    changed = read_plan(_write_plan(tmp_path, plan_text + job + "seed = 7\n"))
    for _ in range(2):  # refused again on a second try: the refusal does not erase the record of the outputs
        refused = run_plan(changed, "tiny")
        assert refused.records["a"].status == "failed" and "--force" in refused.records["a"].error
        assert concept.read_bytes() == original
    forced = run_plan(changed, "tiny", force=True)
    assert forced.records["a"].status == "done" and concept.read_bytes() != original


def test_a_job_that_fails_once_succeeds_on_its_second_try(tmp_path, monkeypatch):
    plan = read_plan(
        _write_plan(
            tmp_path,
            '[[job]]\nname = "a"\nrun = "create"\ncategory = "pet"\nsteps = 2\n'
            'images = false\nadaptive = false\nmodel = "tiny"\n',
        )
    )
    real_run_job, calls = batch_module.run_job, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk hiccup")
        return real_run_job(*args, **kwargs)

    monkeypatch.setattr(batch_module, "run_job", flaky)
    events = []
    result = run_plan(plan, "tiny", on_event=events.append)
    assert (result.records["a"].status, result.records["a"].attempts) == ("done", 2)
    assert [e.what for e in events if e.what in ("start", "retry", "done")] == ["start", "retry", "start", "done"]
    assert (tmp_path / "runs/plan" / RECORDS_FOLDER / "a.json").is_file()


def test_external_concepts_are_copied_into_the_plans_folder(family_runs, tmp_path):
    parent = family_runs["local"].out / "a/a.safetensors"
    plan_text = (
        f'[plan]\nout = "out"\n\n[[job]]\nname = "render"\nrun = "sample"\nconcepts = ["{parent}"]\n'
        'prompt = "a {} in the snow"\nn = 1\nsize = 32\nsteps = 2\n'
    )
    result = run_plan(read_plan(_write_plan(tmp_path, plan_text)), "tiny")
    assert result.records["render"].status == "done"
    assert (result.out / "inputs/a.safetensors").read_bytes() == parent.read_bytes()
    assert any(name.endswith(".png") for name in result.records["render"].files)


@pytest.mark.parametrize(
    ("plan_text", "message"),
    [
        ("[[job]]\nname = 'a'\nrun = 'paint'\n", "run must be one of create, mix, evolve, sample, evaluate"),
        ("[[job]]\nname = 'a'\nrun = 'create'\ncategory = 'pet'\ncolour = 1\n", "create takes no colour"),
        ("[[job]]\nname = 'a'\nrun = 'create'\ncategory = 'pet'\nsteps = 'many'\n", "steps must be int"),
        ("[[job]]\nname = 'a'\nrun = 'create'\n", "create needs category"),
        (
            "[[job]]\nname = 'a'\nrun = 'mix'\nwords = ['a', 'b']\nweights = ['x']\n",
            "weights must be a list of numbers",
        ),
        ("[[job]]\nname = 'a b'\nrun = 'create'\ncategory = 'pet'\n", "name must be letters"),
        ("[[job]]\nname = 'a'\nrun = 'create'\ncategory = 'pet'\n" * 2, "job names must be unique (a repeats)"),
        ("[[job]]\nname = 'a'\nrun = 'create'\ncategory = 'pet'\nafter = ['z']\n", "after names z"),
        (
            "[[job]]\nname = 'a'\nrun = 'evolve'\nparents = ['b']\n"
            "[[job]]\nname = 'b'\nrun = 'evolve'\nparents = ['a']\n",
            "in a circle (a -> b -> a)",
        ),
        (
            "[[job]]\nname = 's'\nrun = 'sample'\nconcepts = ['a']\nprompt = '{}'\n"
            "[[job]]\nname = 'e'\nrun = 'evaluate'\nconcepts = ['s']\n",
            "'s' is a sample job, not a concept",
        ),
        (
            "[[job]]\nname = 'a'\nrun = 'create'\ncategory = 'pet'\nout = '../elsewhere'\n",
            "out must be a folder inside",
        ),
        ("[plan]\nout = 'x'\n", "has no [[job]]"),
        ("[[job]\nname = 'a'\n", "is not valid TOML"),
    ],
)
def test_bad_plans_get_one_line_naming_the_problem(tmp_path, plan_text, message):
    with pytest.raises(UsageError) as caught:
        parse_plan(plan_text, tmp_path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_input_file_is_refused_before_anything_runs(tmp_path):
    plan = parse_plan("[[job]]\nname = 'e'\nrun = 'evaluate'\nconcepts = ['gone.safetensors']\n", tmp_path)
    with pytest.raises(UsageError, match=r"gone\.safetensors is neither a job of the plan nor a file"):
        run_plan(plan, "tiny")
    assert not plan.out.exists()


def test_cli_batch_prints_a_table_and_exits_1_when_a_job_failed(family_runs, run_cli):
    code, out, err = run_cli("batch", family_runs["plan"])
    assert code == 1
    assert "reused" in out and "blocked" in out and "failed" in out
    assert "2 job(s) did not finish: broken, after-broken" in " ".join(err.split())


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["batch", "p.toml", "--ray"], ["batch", "p.toml", "--ray", "local"]),
        (["batch", "--ray", "p.toml"], ["batch", "--ray", "local", "p.toml"]),
        (["batch", "p.toml", "--ray", "--force"], ["batch", "p.toml", "--ray", "local", "--force"]),
        (["batch", "p.toml", "--ray", "ray://head:10001"], ["batch", "p.toml", "--ray", "ray://head:10001"]),
        (["batch", "p.toml", "--ray", "10.0.0.2:6379"], ["batch", "p.toml", "--ray", "10.0.0.2:6379"]),
        (["batch", "p.toml", "--ray", "auto"], ["batch", "p.toml", "--ray", "auto"]),
    ],
)
def test_ray_flag_takes_an_optional_address(argv, expected):
    assert expand_ray_flag(argv) == expected


def test_help_shows_a_plan_with_its_toml_brackets(run_cli):
    code, out, _ = run_cli("batch", "--help")
    flat = " ".join(out.split())
    assert code == 0
    assert "[plan]" in flat and "[[job]]" in flat and "conceptlab[ray]" in flat
