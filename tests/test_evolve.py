"""`evolve`, lineages that survive without their parent files, `lineage` and `verify`."""

import dataclasses
import importlib
import json
import shutil
import statistics
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from conceptlab.engine.concept.file import Concept, load_concept, save_concept
from conceptlab.engine.models.backend import DecoderStack
from conceptlab.engine.rendering.render import RenderSettings
from conceptlab.engine.training.run_folder import read_log, step_lines

TINY = ("--model", "tiny", "--device", "cpu")
QUICK = ("--no-images", "--every", "20")


@pytest.fixture
def family(concept_family):
    """The session's concept family (conftest): a, b, c, their child (a and b, 3:1) and grandchild (child and c)."""
    return concept_family


def test_child_records_its_parents_with_weights(family):
    metadata = load_concept(family["child"]).metadata
    assert metadata["kind"] == "evolve" and metadata["category"] == "pet"
    parents = metadata["parents"]
    assert [p["sha256"] for p in parents] == [load_concept(family[n]).sha256 for n in "ab"]
    assert [p["weight"] for p in parents] == [0.75, 0.25]
    assert [record["negatives"][0]["word"] for record in metadata["lineage"]] == ["cat", "dog"]


def test_child_moves_toward_its_parents_images(family):
    log = step_lines(read_log(family["child"].parent / "log.jsonl"))
    labels = list(log[0]["positive"])
    assert len(labels) == 2 and not log[0]["negative"]
    weighted = [sum(w * r["positive"][label] for w, label in zip((0.75, 0.25), labels, strict=True)) for r in log]
    assert statistics.fmean(weighted[-20:]) > statistics.fmean(weighted[:20]) + 0.02


@pytest.fixture(scope="module")
def photo_children(tmp_path_factory):
    """Children of two folders of the tiny world's photos (a cat's, a guitar's), weighted 3:1 and 1:3."""
    from conceptlab.cli.app import main
    from conceptlab.plugins.tiny.world import synthetic_picture

    root = tmp_path_factory.mktemp("photos")
    for word in ("cat", "guitar"):
        (root / word).mkdir()
        for variant in range(4):
            synthetic_picture(word, variant).save(root / word / f"{variant}.png")
    logs = {}
    for weights in ("3,1", "1,3"):
        out = root / f"child-{weights.replace(',', '-')}"
        args = ["evolve", str(root / "cat"), str(root / "guitar"), *TINY, "--init", "pet", "--steps", "80"]
        assert main([*args, "--weights", weights, "--no-images", "--out", str(out)]) == 0
        logs[weights] = step_lines(read_log(out / "log.jsonl"))
    return logs


def _start_and_end(log, label):
    return statistics.fmean(r["positive"][label] for r in log[:10]), statistics.fmean(
        r["positive"][label] for r in log[-10:]
    )


def test_child_moves_toward_its_parents_photos_and_most_toward_the_heavier(photo_children):
    """The weighted similarity to the parents' photos (what `L_mix` rewards) rises, and so does the heavier parent's.

    The lighter parent's may fall: the child starts from "pet", already near the cat's photos.
    """
    for weights, heavy in (("3,1", "cat"), ("1,3", "guitar")):
        log, (w_cat, w_guitar) = photo_children[weights], (int(w) / 4 for w in weights.split(","))
        (cat_start, cat_end), (guitar_start, guitar_end) = (_start_and_end(log, label) for label in ("cat", "guitar"))
        assert w_cat * cat_end + w_guitar * guitar_end > w_cat * cat_start + w_guitar * guitar_start + 0.02, weights
        start, end = _start_and_end(log, heavy)
        assert end > start + 0.02, (heavy, start, end)


def test_the_heavier_parent_pulls_harder(photo_children):
    def lead(weights):
        return _start_and_end(photo_children[weights], "cat")[1] - _start_and_end(photo_children[weights], "guitar")[1]

    assert lead("3,1") > lead("1,3") + 0.005


def test_verify_reports_present_changed_and_missing_ancestors(family, tmp_path, run_cli):
    code, out, _ = run_cli("verify", family["grandchild"])
    assert code == 0 and "matches its sha256" in out
    parents_dir = tmp_path / "parents"
    parents_dir.mkdir()
    shutil.copy(family["a"], parents_dir / "a.safetensors")
    data = bytearray(family["b"].read_bytes())
    data[-4:] = b"\x00\x00\x80\x3f"
    (parents_dir / "b.safetensors").write_bytes(bytes(data))
    code, out, _ = run_cli("verify", family["grandchild"], "--parents", parents_dir)
    statuses = [line.split()[0] for line in out.splitlines()[1:]]
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert code == 1
    assert sorted(statuses) == ["changed", "missing", "missing", "present"]
    assert "a.safetensors" in lines["present"] and "b.safetensors" in lines["changed"]


def _verify_lines(run_cli, concept, folder):
    """Exit code and the ancestor lines (`status token sha [path]`) of `verify CONCEPT --parents FOLDER`."""
    code, out, _ = run_cli("verify", concept, "--parents", folder)
    return code, out.splitlines()[1:]


def _copy_family_folders(family, folder, names):
    """Copy each named concept into FOLDER/<its own folder name>/, keeping its file name, as a runs/ folder holds."""
    for name in names:
        source = family[name]
        (folder / source.parent.name).mkdir(parents=True)
        shutil.copy(source, folder / source.parent.name / source.name)


def test_verify_calls_a_deleted_ancestor_missing_though_others_share_its_file_name(family, tmp_path, run_cli):
    assert family["a"].name == family["b"].name == family["c"].name == "new-pet.safetensors"
    _copy_family_folders(family, tmp_path, ("a", "c", "child"))  # b's folder deleted
    code, lines = _verify_lines(run_cli, family["grandchild"], tmp_path)
    assert code == 0 and sorted(line.split()[0] for line in lines) == ["missing", "present", "present", "present"]
    (missing,) = [line for line in lines if line.split()[0] == "missing"]
    assert load_concept(family["b"]).sha256[:12] in missing
    token_columns = {line.index(line.split()[1], len(line.split()[0]) + 2) for line in lines}
    assert len(token_columns) == 1, lines  # the status column is padded as shown, not counting markup


def test_verify_calls_an_ancestor_changed_only_where_another_concept_replaced_its_file(family, tmp_path, run_cli):
    _copy_family_folders(family, tmp_path, ("a", "c", "child"))
    b_place = tmp_path / family["b"].parent.name / family["b"].name
    b_place.parent.mkdir()
    shutil.copy(family["c"], b_place)  # an intact copy of another ancestor says nothing about b
    code, lines = _verify_lines(run_cli, family["grandchild"], tmp_path)
    assert code == 0 and sorted(line.split()[0] for line in lines) == ["missing", "present", "present", "present"]

    b = load_concept(family["b"])
    save_concept(Concept(b.token, -b.vector, b.metadata), b_place)  # a concept no ancestor is, where b was read
    code, lines = _verify_lines(run_cli, family["grandchild"], tmp_path)
    changed = [line for line in lines if line.split()[0] == "changed"]
    assert code == 1 and len(changed) == 1, lines
    assert b.sha256[:12] in changed[0] and str(b_place) in changed[0]


def test_evaluate_scores_an_evolved_concept_against_its_parents_images(family):
    (row,) = json.loads(family["metrics"].read_text())["rows"]  # `eval CHILD -n 2 --json`, run by the fixture
    parents = row["parents"]
    assert [entry["weight"] for entry in parents.values()] == [0.75, 0.25]
    assert all(entry["similarity"]["n"] == 2 for entry in parents.values())


def test_lineage_survives_deleting_every_parent_file(family, tmp_path, run_cli):
    shas = {name: load_concept(family[name]).sha256 for name in ("a", "b", "c", "child", "grandchild")}
    alone = tmp_path / "grandchild.safetensors"
    shutil.copy(family["grandchild"], alone)
    hidden = {name: tmp_path / f"hidden-{name}.safetensors" for name in ("a", "b", "c", "child")}
    for name, place in hidden.items():  # gone from where they were made; put back after (the family is shared)
        shutil.move(family[name], place)
    try:
        code, out, err = run_cli("lineage", alone, "--json")
    finally:
        for name, place in hidden.items():
            shutil.move(place, family[name])
    assert code == 0, err
    tree = json.loads(out)
    child, third = tree["parents"]
    found = {tree["sha256"], child["sha256"], third["sha256"], *(p["sha256"] for p in child["parents"])}
    assert found == set(shas.values())
    assert [p["weight"] for p in child["parents"]] == [0.75, 0.25]
    code, out, _ = run_cli("lineage", alone, "--dot", tmp_path / "tree.dot")
    assert code == 0 and "4 ancestors" in out
    assert (tmp_path / "tree.dot").read_text().count("->") == 4


def test_parents_of_different_models_are_refused(family, tmp_path, run_cli):
    other = Concept("<wide>", torch.zeros(128), {"backend": "kandinsky-2.2", "model": "x", "kind": "create"})
    save_concept(other, tmp_path / "wide.safetensors")
    code, _, err = run_cli("evolve", family["grandchild"], tmp_path / "wide.safetensors", "--device", "cpu")
    assert code == 2 and "different models" in err and len(err.strip().splitlines()) == 1


def test_an_altered_parent_is_refused(family, tmp_path, run_cli):
    altered = tmp_path / "altered.safetensors"
    data = bytearray(family["grandchild"].read_bytes())
    data[-4:] = b"\x00\x00\x80\x3f"  # the last float of the embedding becomes 1.0
    altered.write_bytes(bytes(data))
    code, _, err = run_cli("evolve", altered, family["grandchild"], "--device", "cpu", "--out", tmp_path / "x")
    assert code == 2 and "sha256" in err
    assert not (tmp_path / "x").exists()


def test_evolve_trains_with_the_prior_settings_given(family, tmp_path, run_cli):
    args = ("--images-per-parent", "3", "--steps", "2", "--device", "cpu", *QUICK)
    settings = ("--prior-steps", "3", "--prior-guidance", "2.5")
    code, _, err = run_cli("evolve", family["grandchild"], *args, *settings, "--out", tmp_path / "child")
    assert code == 0, err
    metadata = load_concept(next((tmp_path / "child").glob("*.safetensors"))).metadata
    assert (metadata["prior_steps"], metadata["prior_guidance"]) == (3, 2.5)


def test_parent_images_are_rendered_once(family, tmp_path, run_cli, monkeypatch):
    evolve_module = importlib.import_module("conceptlab.engine.training.evolve")  # the package exports `evolve` too
    args = ("--images-per-parent", "3", "--steps", "2", "--device", "cpu", *QUICK)
    code, _, err = run_cli("evolve", family["grandchild"], *args, "--out", tmp_path / "first")
    assert code == 0, err

    def no_render(*args, **kwargs):
        raise AssertionError("parents were rendered again")

    monkeypatch.setattr(evolve_module, "render_prompts", no_render)
    code, _, err = run_cli("evolve", family["grandchild"], "--token", "<again>", *args, "--out", tmp_path / "again")
    assert code == 0, err


def test_a_mismatched_later_parent_is_refused_before_any_parent_is_rendered(family, tmp_path, run_cli, monkeypatch):
    evolve_module = importlib.import_module("conceptlab.engine.training.evolve")
    rendered = []

    def record_render(*args, **kwargs):
        rendered.append(args)
        raise AssertionError("a parent was rendered before every parent was checked")

    monkeypatch.setattr(evolve_module, "render_prompts", record_render)
    first = load_concept(family["grandchild"])
    other_encoder = {**first.metadata, "text_encoder_fingerprint": "0" * 16}
    save_concept(Concept("<other>", first.vector.flip(0), other_encoder), tmp_path / "other.safetensors")
    args = ("--images-per-parent", "2", "--device", "cpu", *QUICK, "--out", tmp_path / "x")
    code, _, err = run_cli("evolve", family["grandchild"], tmp_path / "other.safetensors", *args)
    assert code == 2 and "other.safetensors" in err and "text encoder" in err, err
    assert len(err.strip().splitlines()) == 1 and rendered == []


def test_parent_images_are_rendered_again_for_another_revision_text_encoder_or_decoder(
    tiny, tiny_decoder, tmp_path, monkeypatch
):
    evolve_module = importlib.import_module("conceptlab.engine.training.evolve")
    monkeypatch.setattr(evolve_module, "cache_root", lambda: tmp_path)
    rendered = []

    def gray_images(stack, decoder, prompts, seeds, settings, **kwargs):
        rendered.append(decoder)
        return [Image.new("RGB", (32, 32), "gray") for _ in prompts]

    monkeypatch.setattr(evolve_module, "render_prompts", gray_images)
    concept = Concept("<p>", torch.randn(tiny.stack.embedding_dim, generator=torch.Generator().manual_seed(0)))
    settings = RenderSettings(size=32, steps=2, prior_steps=2)
    other_decoder = DecoderStack(
        SimpleNamespace(name_or_path="someone/another-decoder"), torch.device("cpu"), torch.float32
    )
    variants = [
        (tiny, tiny_decoder),
        (dataclasses.replace(tiny, info=dataclasses.replace(tiny.info, revision="v2")), tiny_decoder),
        (
            dataclasses.replace(tiny, info=dataclasses.replace(tiny.info, text_encoder_fingerprint="0" * 16)),
            tiny_decoder,
        ),
        (tiny, other_decoder),
    ]
    for loaded, decoder in variants:
        evolve_module.concept_parent_embeds(loaded, decoder, concept, 2, settings)
    assert len(rendered) == len(variants)
    for loaded, decoder in variants:  # each is cached under its own key now
        evolve_module.concept_parent_embeds(loaded, decoder, concept, 2, settings)
    assert len(rendered) == len(variants)
