"""Every model nameable for every command, from folders a user saved with diffusers' and transformers' own classes
(diffusers' fast-test configs, `tests/fast_test_models.py`), with no hub: create (with images, and with the
clip-zeroshot oracle), evolve, sample, evaluate (rendering and on folders), a batch plan and doctor; the settings
file and its precedence; and the rough edges a new user meets (grids scored as images, errors cut mid-word, tables
cut at 80 columns)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fast_test_models import save_clip, save_decoder, save_prior
from PIL import Image
from rich.table import Table

from conceptlab.engine.concept.file import load_concept
from conceptlab.engine.errors import short_reason

FAST = ("--image-size", "32", "--image-steps", "2")
TRAIN = ("--steps", "2", "--every", "2", "--lr", "1e-3", *FAST)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("user-models")
    made = {"prior": root / "k22-prior", "decoder": root / "k22-decoder", "clip": root / "clip"}
    save_prior(made["prior"])
    save_decoder(made["decoder"])
    save_clip(made["clip"])
    return made


@pytest.fixture(scope="module")
def concepts(folders, tmp_path_factory) -> dict[str, Path]:
    """Two concepts made by `create` against the user's prior and decoder (the first with checkpoint images)."""
    from conceptlab.cli.app import main

    root = tmp_path_factory.mktemp("concepts")
    made = {}
    for name, negatives, images in (("a", "cat,dog", "--images"), ("b", "hamster,rabbit", "--no-images")):
        out = root / name
        model = ("--model", folders["prior"], "--backend", "kandinsky-2.2", "--decoder", folders["decoder"])
        arguments = ["create", "--category", "pet", "--neg", negatives, "--token", f"<{name}>", *model, *TRAIN]
        assert main([str(a) for a in [*arguments, images, "--seed", len(made), "--out", out]]) == 0
        made[name] = out / f"{name}.safetensors"
    return made


@pytest.fixture(scope="module")
def samples(concepts, tmp_path_factory) -> Path:
    """`sample -n 2` of the first concept, its model and decoder taken from the concept: two images and a grid."""
    from conceptlab.cli.app import main

    out = tmp_path_factory.mktemp("samples")
    arguments = ["sample", concepts["a"], "--prompt", "a photo of a {}", "-n", "2", "--size", "32", "--steps", "2"]
    assert main([str(a) for a in [*arguments, "-o", out, "--force"]]) == 0
    return out


def test_create_renders_checkpoints_with_the_given_decoder_at_the_given_size_and_records_both(concepts, folders):
    run = concepts["a"].parent
    pictures = sorted((run / "images").glob("step-*-seed-*.png"))
    assert pictures and all(Image.open(path).size == (32, 32) for path in pictures)
    metadata = load_concept(concepts["a"]).metadata
    assert metadata["decoder"] == str(folders["decoder"].resolve())
    assert metadata["model"] == str(folders["prior"])
    assert (metadata["config"]["image_size"], metadata["config"]["image_steps"]) == (32, 2)


def test_create_with_the_clip_zeroshot_oracle_runs_on_the_users_folders(folders, tmp_path, run_cli):
    out = tmp_path / "adaptive"
    model = ("--model", folders["prior"], "--backend", "kandinsky-2.2", "--decoder", folders["decoder"])
    code, _, err = run_cli("create", "--category", "pet", "--oracle", "clip-zeroshot", *model, *TRAIN, "--out", out)
    assert code == 0, err
    metadata = load_concept(out / "new-pet.safetensors").metadata
    assert metadata["oracle_answers"], "the oracle was asked about the first images"
    assert metadata["decoder"] == str(folders["decoder"].resolve())


def test_evolve_and_sample_default_to_the_model_and_decoder_the_concept_records(concepts, samples, tmp_path, run_cli):
    child = tmp_path / "child"
    parents = (concepts["a"], concepts["b"])
    arguments = ("--images-per-parent", "1", *TRAIN, "--no-images", "--token", "<kid>", "--out", child)
    code, _, err = run_cli("evolve", *parents, *arguments)
    assert code == 0, err
    recorded = load_concept(concepts["a"]).metadata
    child_record = load_concept(child / "kid.safetensors").metadata
    assert (child_record["model"], child_record["decoder"]) == (recorded["model"], recorded["decoder"])
    assert len(list(samples.glob("*-grid.png"))) == 1 and len(list(samples.glob("*.png"))) == 3


def test_evaluate_renders_with_the_concepts_decoder_and_scores_with_a_clip_folder(concepts, folders, run_cli):
    arguments = ("-n", "2", "--size", "32", "--steps", "2", "--clip", folders["clip"], "--json")
    code, out, err = run_cli("evaluate", concepts["a"], *arguments)
    assert code == 0, err
    result = json.loads(out)
    assert result["clip"] == str(folders["clip"])
    assert result["rows"][0]["metrics"]["positive"]["n"] == 2


def test_evaluate_images_skips_the_toolkits_grids_and_says_so(samples, folders, tmp_path, run_cli):
    scored = tmp_path / "scored"
    shutil.copytree(samples, scored)
    Image.new("RGB", (32, 32)).save(scored / "strip.png")
    scoring = ("--category", "pet", "--neg", "cat,dog", "--clip", folders["clip"], "--json")
    code, out, err = run_cli("evaluate", "--images", scored, *scoring)
    assert code == 0, err
    assert json.loads(out)["rows"][0]["metrics"]["positive"]["n"] == 2
    assert "skipped 2" in err
    only_toolkit = tmp_path / "plots"
    only_toolkit.mkdir()
    Image.new("RGB", (8, 8)).save(only_toolkit / "similarities.png")
    code, out, err = run_cli("evaluate", "--images", only_toolkit, *scoring)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "plots" in err and "Traceback" not in err


def test_a_batch_plan_names_every_model_once_in_plan(folders, tmp_path, run_cli):
    plan = tmp_path / "plan.toml"
    plan.write_text(
        f"""
[plan]
out = "out"
model = "{folders["prior"]}"
backend = "kandinsky-2.2"
decoder = "{folders["decoder"]}"
clip = "{folders["clip"]}"

[[job]]
name = "a"
run = "create"
category = "pet"
neg = ["cat", "dog"]
steps = 2
every = 2
image_seeds = [42]
image_size = 32
image_steps = 2

[[job]]
name = "score"
run = "evaluate"
concepts = ["a"]
n = 2
size = 32
steps = 2
"""
    )
    code, _, err = run_cli("batch", plan)
    assert code == 0, err
    concept = load_concept(tmp_path / "out" / "a" / "a.safetensors")
    assert concept.metadata["decoder"] == str(folders["decoder"].resolve())
    metrics = json.loads((tmp_path / "out" / "score" / "metrics.json").read_text())
    assert metrics["clip"] == str(folders["clip"])
    assert all(Image.open(p).size == (32, 32) for p in (tmp_path / "out" / "a" / "images").glob("step-*.png"))


# --- the settings file ---------------------------------------------------------------------------------------


def _settings(path: Path, folders: dict[str, Path], decoder: str | None = None) -> Path:
    path.write_text(
        f"""
[models."kandinsky-2.2"]
prior = "{folders["prior"]}"
decoder = "{decoder or folders["decoder"]}"
clip = "{folders["clip"]}"
"""
    )
    return path


def test_the_settings_file_names_the_models_once_and_the_command_line_wins(folders, tmp_path, monkeypatch, run_cli):
    monkeypatch.delenv("CONCEPTLAB_CONFIG")
    monkeypatch.chdir(tmp_path)
    _settings(tmp_path / "conceptlab.toml", folders, decoder="./no-such-decoder")
    train = ("create", "--category", "pet", "--neg", "cat", "--model", "kandinsky-2.2", *TRAIN)
    code, _, err = run_cli(*train, "--out", "from-file")
    assert code == 1 and "no-such-decoder" in err and "--decoder" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(*train, "--decoder", folders["decoder"], "--out", "cli-wins")
    assert code == 0, err
    metadata = load_concept(tmp_path / "cli-wins" / "new-pet.safetensors").metadata
    assert (metadata["model"], metadata["decoder"]) == (str(folders["prior"]), str(folders["decoder"].resolve()))


def test_the_settings_file_is_found_in_the_working_directory_then_xdg_then_the_environment(
    folders, tmp_path, monkeypatch
):
    from conceptlab.engine.models.settings import load_settings

    monkeypatch.delenv("CONCEPTLAB_CONFIG")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert load_settings().path is None
    xdg = tmp_path / "xdg" / "conceptlab" / "config.toml"
    xdg.parent.mkdir(parents=True)
    _settings(xdg, folders)
    assert load_settings().path == xdg
    _settings(tmp_path / "conceptlab.toml", folders)
    assert load_settings().path == tmp_path / "conceptlab.toml"
    elsewhere = _settings(tmp_path / "elsewhere.toml", folders, decoder="relative-decoder")
    (tmp_path / "relative-decoder").mkdir()
    monkeypatch.setenv("CONCEPTLAB_CONFIG", str(elsewhere))
    settings = load_settings()
    assert settings.path == elsewhere
    assert settings.model("kandinsky-2.2", "decoder") == (str(tmp_path / "relative-decoder"), None)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[models.\n", "not a readable TOML"),
        ('[models."kandinsky-9"]\nprior = "x"\n', "models.kandinsky-9"),
        ('[models."kandinsky-2.2"]\npriors = "x"\n', "models.kandinsky-2.2.priors"),
        ('[models."kandinsky-2.2"]\nprior = 3\n', "models.kandinsky-2.2.prior"),
        ('[model]\nprior = "x"\n', "'model'"),
    ],
)
def test_a_bad_settings_file_is_refused_in_one_line_naming_file_and_key(text, named, tmp_path, monkeypatch, run_cli):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    monkeypatch.setenv("CONCEPTLAB_CONFIG", str(bad))
    code, out, err = run_cli("doctor")
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1
    assert str(bad) in " ".join(err.split()) and named in err


# --- doctor --------------------------------------------------------------------------------------------------


def test_doctor_reports_where_each_model_is_without_loading_weights(folders, tmp_path, monkeypatch, run_cli):
    import diffusers
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("doctor loaded weights")

    monkeypatch.setattr(diffusers.DiffusionPipeline, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", refuse)
    monkeypatch.setenv("CONCEPTLAB_CONFIG", str(_settings(tmp_path / "models.toml", folders)))
    code, out, err = run_cli("doctor", "--json")
    assert code == 0, err
    report = json.loads(out)
    places = {(b["name"], m["role"]): m for b in report["backends"] for m in b["models"]}
    prior = places[("kandinsky-2.2", "prior")]
    assert prior["where"] == "folder" and prior["from_settings"] and prior["bytes"] > 0
    assert places[("kandinsky-2.1", "decoder")]["where"] == "missing"
    assert report["hub_offline"] is True and report["settings_file"] == str(tmp_path / "models.toml")
    assert any(device["name"] == "cpu" for device in report["devices"])


# --- output --------------------------------------------------------------------------------------------------


def test_errors_from_libraries_are_shortened_to_their_first_sentence_or_at_a_word_boundary():
    hub = OSError(
        "Cannot find an appropriate cached snapshot folder for the specified revision on the local disk and "
        "outgoing traffic has been disabled. To enable repo look-ups and downloads online, pass "
        "'local_files_only=False'."
    )
    assert short_reason(hub) == (
        "Cannot find an appropriate cached snapshot folder for the specified revision on the local disk and "
        "outgoing traffic has been disabled"
    )
    endless = ValueError("word " * 100)
    shortened = short_reason(endless, limit=60)
    assert shortened.endswith("…") and len(shortened) <= 61
    assert set(shortened[:-1].split()) == {"word"}, "never a word cut in half"


def test_tables_print_at_full_width_into_a_pipe_and_as_tsv_with_plain(capsys):
    from conceptlab.cli.output import show_table

    table = Table(title="wide")
    for column in ("row", "category", "positive ↑", "negative ↓", "novelty ↑", "diversity ↑", "n"):
        table.add_column(column, overflow="fold")
    table.add_row("conceptlab-long-row-name", "musical instrument", *["0.123±0.456"] * 4, "32")
    show_table(table)
    out = capsys.readouterr().out
    assert "conceptlab-long-row-name" in out and "musical instrument" in out
    assert max(len(line) for line in out.splitlines()) > 80
    show_table(table, plain=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["row", "category", "positive ↑", "negative ↓", "novelty ↑", "diversity ↑", "n"]
    assert lines[1].split("\t")[:2] == ["conceptlab-long-row-name", "musical instrument"]


def test_doctor_says_which_offload_decision_create_would_take_and_why():
    from conceptlab.engine.models.doctor import ModelPlace, offload_decision

    def places(decoder_bytes: int | None) -> tuple[ModelPlace, ...]:
        sizes = {"prior": 7_100_000_000, "decoder": decoder_bytes, "oracle": 7_900_000_000}
        where = {role: "missing" if size is None else "hub cache" for role, size in sizes.items()}
        return tuple(ModelPlace(role, f"x/{role}", None, where[role], size) for role, size in sizes.items())

    assert offload_decision(places(2_600_000_000), None).startswith("no offloading: no CUDA GPU")
    on_16_gb = offload_decision(places(2_600_000_000), 16_000_000_000)
    assert on_16_gb.startswith("offload:") and "8.9 GB free after the prior" in on_16_gb
    assert offload_decision(places(2_600_000_000), 80_000_000_000).startswith("keep all resident:")
    assert offload_decision(places(None), 80_000_000_000).startswith("cannot tell: the decoder")


def test_the_demo_says_which_phase_it_is_in(tmp_path, monkeypatch, run_cli):
    import conceptlab.plugins.tiny.backend as tiny

    monkeypatch.setattr(tiny, "tiny_world_built", lambda: False)  # as on a fresh machine (it is cached here)
    code, _, err = run_cli("demo", "--steps", "2", "--out", tmp_path / "demo")
    assert code == 0, err
    phases = [line for line in err.splitlines() if line.startswith("==")]
    assert phases[0].startswith("== building the tiny world") and phases[1].startswith("== training a new pet")
