"""Hostile inputs, round three (issue 29): results that could be forged or silently wrong (class 2), sizes and counts
without a bound (class 3), and embed's default against sample's and the stock pipeline's (class 7).

Every refusal is one line with exit code 2, and the cases that would have taken gigabytes are refused before any
weights load: `no_weights` makes every `from_pretrained` fail the test.
"""

import csv
import hashlib
import io
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, ModelMixin
from PIL import Image
from transformers import PreTrainedModel

from conceptlab.engine.concept.file import Concept, concept_bytes, load_concept, save_concept
from conceptlab.engine.errors import ConceptFileError, UsageError
from conceptlab.engine.evaluation.evaluate import EvaluationRow, results_csv
from conceptlab.engine.evaluation.metrics import (
    ConceptMetrics,
    EvaluationTarget,
    Evaluator,
    Summary,
    novelty,
    typicality,
)
from conceptlab.engine.evaluation.protocols.creative import IMAGINED_HASHES, _imagined_hashes
from conceptlab.engine.evaluation.protocols.runner import already_rendered
from conceptlab.engine.imagine.request import ImagineRequest
from conceptlab.engine.io.images import (
    MAX_LOADED_SIDE,
    check_finite_tensors,
    finite_images,
    load_images,
    render_source,
    save_renders,
)
from conceptlab.engine.models.model_cache import ModelCache
from conceptlab.engine.options import BOUNDS, check_bounds
from conceptlab.engine.rendering import render as render_module
from conceptlab.engine.rendering.embed import EmbedRequest, embed
from conceptlab.engine.rendering.render import RenderSettings, render_image_embeds
from conceptlab.engine.rendering.sample import SampleRequest, fill_prompt, sample

DOCS = Path(__file__).resolve().parents[1] / "docs" / "hostile-files.md"


@pytest.fixture
def no_weights(monkeypatch):
    """Any weights loaded fail the test (and show up in `loads`): a refusal must come before them."""
    loads: list[str] = []

    def refuse(cls, *args, **kwargs):
        loads.append(cls.__name__)
        raise AssertionError(f"{cls.__name__}.from_pretrained was called")

    for base in (DiffusionPipeline, ModelMixin, PreTrainedModel):
        monkeypatch.setattr(base, "from_pretrained", classmethod(refuse))
    return loads


@pytest.fixture(scope="module")
def concept_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("concept") / "new-pet.safetensors"
    vector = torch.randn(64, generator=torch.Generator().manual_seed(0)) * 0.05
    save_concept(Concept("<new-pet>", vector, {"backend": "tiny", "category": "pet"}), path)
    return path


def _refused(run_cli, *args: str, fragment: str) -> None:
    code, _, err = run_cli(*args)
    assert code == 2, err
    assert fragment in err and len(err.strip().splitlines()) == 1, err


# class 3: every size, count and step option is bounded before any weights load ---------------------------------

IMAGINE = ("imagine", "--category", "pet", "--model", "tiny")
OVER_THE_BOUND = [
    ((*IMAGINE, "--size", "100000"), "--size 100000 is beyond the bound 4096"),
    ((*IMAGINE, "-n", "50000000"), "-n 50000000 is beyond the bound 1000"),
    ((*IMAGINE, "-n", "100000000000"), "-n 100000000000 is beyond the bound 1000"),
    ((*IMAGINE, "--steps", "100000"), "--steps 100000 is beyond the bound 1000"),
    ((*IMAGINE, "--max-negatives", "100000"), "--max-negatives 100000 is beyond the bound 1000"),
    ((*IMAGINE, "--seeds", ",".join(map(str, range(1001)))), "--seeds has 1001 items"),
    (("sample", "{concept}", "--prompt", "a {}", "--via", "unclip", "--size", "100000"), "--size 100000"),
    (("sample", "{concept}", "--prompt", "a {}", "--size", "65536"), "--size 65536 is beyond the bound 4096"),
    (("sample", "{concept}", "--prompt", "a {}", "-n", "1001"), "-n 1001 is beyond the bound 1000"),
    (("sample", "{concept}", "--prompt", "a {}", "--prior-steps", "5000"), "--prior-steps 5000"),
    (("embed", "{concept}", "--prompt", "a {}", "--out", "e.safetensors", "--prior-steps", "100000"), "1000"),
    (("embed", "{concept}", "--prompt", "a {}", "--out", "e.safetensors", "-n", "10000"), "-n 10000"),
    (("evaluate", "--images", ".", "--category", "pet", "-n", "5000"), "-n 5000 is beyond the bound 1000"),
    (("evaluate", "{concept}", "--size", "100000"), "--size 100000 is beyond the bound 4096"),
    (("create", "--category", "pet", "--model", "tiny", "--steps", "1000000"), "--steps 1000000 is beyond"),
    (("create", "--category", "pet", "--model", "tiny", "--image-size", "100000"), "--image-size 100000"),
    (("create", "--category", "pet", "--model", "tiny", "--prior-steps", "100000"), "--prior-steps 100000"),
]


@pytest.mark.parametrize(("args", "fragment"), OVER_THE_BOUND, ids=lambda value: " ".join(value)[:60])
def test_sizes_counts_and_steps_beyond_their_bound_are_refused_before_any_weights(
    run_cli, no_weights, concept_file, tmp_path, monkeypatch, args, fragment
):
    monkeypatch.chdir(tmp_path)
    _refused(run_cli, *[str(concept_file) if arg == "{concept}" else arg for arg in args], fragment=fragment)
    assert no_weights == []


def test_a_plan_meets_the_same_bounds_as_the_command_line(run_cli, no_weights, tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[plan]\nout = "out"\n[[job]]\nname = "a"\nrun = "create"\ncategory = "pet"\nimage_size = 99999\n')
    _refused(run_cli, "batch", plan, "--model", "tiny", fragment="--image-size 99999 is beyond the bound 4096")
    assert no_weights == []


def test_a_library_request_meets_the_bounds_too():
    with pytest.raises(UsageError, match="--size 100000 is beyond the bound 4096"):
        RenderSettings(size=100000)
    with pytest.raises(UsageError, match="-n 5000 is beyond"):
        ImagineRequest(category="pet", n=5000, model="tiny").check()
    check_bounds(ImagineRequest(category="pet", n=1000, size=4096, steps=1000, guidance=100.0, model="tiny"))


def test_every_bound_is_documented_with_its_value():
    text = DOCS.read_text(encoding="utf-8")
    for name, bound in BOUNDS.items():
        option = "`--steps` (training" if name == "train_steps" else ("`-n`" if name == "n" else f"`--{name}`")
        rows = [row for row in text.splitlines() if row.startswith("|")]
        line = next((row for row in rows if option.replace("_", "-") in row), "")
        assert f"| {bound.high:g} | {bound.why} |" in line, name


@pytest.mark.parametrize("prompt", ["{0:>200000000}", "{:>99999999}", "{0!r:^100000000}", "{0.__class__}", "{x}"])
def test_prompt_fields_are_substituted_literally_never_by_str_format(run_cli, no_weights, concept_file, prompt):
    with pytest.raises(UsageError, match="is not a concept's place"):
        fill_prompt(prompt, ["<new-pet>"])
    _refused(run_cli, "embed", concept_file, "--prompt", prompt, "--out", "x.safetensors", fragment="--prompt")
    assert no_weights == []


def test_literal_prompt_fields_keep_their_meaning():
    assert fill_prompt("{{a}} {} and {}", ["<a>", "<b>"]) == "{a} <a> and <b>"
    assert fill_prompt("{1} then {0}", ["<a>", "<b>"]) == "<b> then <a>"
    with pytest.raises(UsageError, match="mixes"):
        fill_prompt("{} {0}", ["<a>"])


def test_an_image_folder_is_read_one_shrunk_image_at_a_time(tmp_path):
    Image.new("RGB", (3 * MAX_LOADED_SIDE, 40), "red").save(tmp_path / "wide.png")
    Image.new("RGB", (32, 32), "blue").save(tmp_path / "small.png")
    wide, small = load_images(tmp_path, [tmp_path / "wide.png", tmp_path / "small.png"])
    assert wide.size == (MAX_LOADED_SIDE, 13) and small.size == (32, 32)


def test_a_folder_of_more_images_than_the_bound_is_refused_before_any_is_read(run_cli, no_weights, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for index in range(1001):
        (folder / f"{index}.png").write_bytes(b"")  # never opened: the count is refused first
    _refused(run_cli, "evaluate", "--images", folder, "--category", "pet", fragment="holds 1001 images, beyond the")
    assert no_weights == []


# class 2: results that could be forged or silently wrong ---------------------------------------------------------


class FixedClip:
    """A CLIP whose every image is the same unit vector and every text another: scores known by hand."""

    name = "fixed"

    def embed_images(self, images):
        return torch.tensor([[1.0, 0.0, 0.0]]).repeat(len(images), 1)

    def embed_texts(self, texts):
        return torch.tensor([[0.6, 0.8, 0.0]]).repeat(len(texts), 1)


def test_timing_json_supplies_only_finite_seconds_never_a_score():
    forged = {"positive": [99.0], "vendi": [123456.0], "novelty": [-5.0], "render-seconds": [2.0, 4.0]}
    forged |= {"train-seconds": [-5.0]}
    metrics = Evaluator(FixedClip()).evaluate("row", ["a", "b"], EvaluationTarget("pet"), forged).metrics
    assert metrics["positive"].mean == pytest.approx(0.6) and metrics["vendi"].mean == pytest.approx(1.0)
    assert "novelty" not in metrics and "train-seconds" not in metrics
    assert (metrics["render-seconds"].mean, metrics["render-seconds"].n) == (3.0, 2)


def test_a_forged_timing_json_beside_images_changes_no_score(run_cli, tmp_path):
    folder = tmp_path / "pets"
    folder.mkdir()
    for index, colour in enumerate(("red", "green")):
        Image.new("RGB", (32, 32), colour).save(folder / f"{index}.png")
    args = ("evaluate", "--images", folder, "--category", "pet", "--model", "tiny", "--device", "cpu", "--json")
    code, honest, err = run_cli(*args)
    assert code == 0, err
    (folder / "timing.json").write_text(json.dumps({"positive": [99.0], "vendi": [123456.0], "novelty": [-5]}))
    code, forged, err = run_cli(*args)
    assert code == 0, err
    assert json.loads(forged)["rows"][0]["metrics"] == json.loads(honest)["rows"][0]["metrics"]


FORMULAS = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


@pytest.mark.parametrize("payload", FORMULAS)
def test_csv_text_cells_cannot_start_a_formula_and_numbers_stay_numbers(payload):
    metrics = ConceptMetrics(payload, payload, (payload, "cat"), {"positive": Summary(-0.25, 0.5, 3)}, {})
    table = list(csv.DictReader(io.StringIO(results_csv([EvaluationRow(payload, metrics)]))))
    row = table[0]
    for cell in ("name", "method", "category", "negatives"):
        assert row[cell].startswith("'") and row[cell][1:].startswith(payload[:1].replace("\r", "\\")), cell
    assert float(row["positive_mean"]) == -0.25 and row["positive_n"] == "3"


def _unit(*values: float) -> torch.Tensor:
    return torch.tensor([values])


def test_novelty_stays_within_0_and_1_when_cosines_are_negative():
    image = _unit(1.0, 0.0)
    assert novelty(image, _unit(-1.0, 0.2)).item() == 1.0  # an unrelated word: new, but never more than 1
    assert novelty(image, _unit(1.0, 0.0)).item() == pytest.approx(0.0, abs=1e-6)
    assert novelty(image, torch.cat([_unit(-1.0, 0.0), _unit(0.6, 0.8)])).item() == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("category", "member", "expected"),
    [
        ((-0.1, 0.995), (-0.6, -0.8), 1.0),  # both cosines below 0, the category's closer: like neither, not < 1
        ((0.6, 0.8), (-0.6, 0.8), 60.0),  # like the category, unlike any member: above 1
        ((-0.6, 0.8), (0.6, 0.8), 1 / 60),  # the other way round: below 1
        ((1.0, 0.0), (-1.0, 0.0), 100.0),  # the top of the range
    ],
)
def test_typicality_keeps_its_range_and_meaning_when_cosines_are_0_or_less(category, member, expected):
    value = typicality(_unit(1.0, 0.0), torch.tensor(category), _unit(*member)).item()
    assert value == pytest.approx(expected, rel=1e-4) and 0.01 <= value <= 100


@pytest.mark.parametrize(
    "args",
    [
        (*IMAGINE, "--guidance", "1e308"),
        (*IMAGINE, "--guidance", "inf"),
        ("sample", "{concept}", "--prompt", "a {}", "--via", "ip-adapter-sdxl", "--ip-scale=1e308"),
        ("sample", "{concept}", "--prompt", "a {}", "--guidance", "nan"),
        ("embed", "{concept}", "--prompt", "a {}", "--out", "e.safetensors", "--prior-guidance", "1e308"),
        ("create", "--category", "pet", "--model", "tiny", "--lr", "1e308"),
    ],
    ids=lambda value: " ".join(value)[:60],
)
def test_finite_extremes_are_refused_at_the_option(run_cli, no_weights, concept_file, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    _refused(run_cli, *[str(concept_file) if arg == "{concept}" else arg for arg in args], fragment="bound")
    assert no_weights == []


def test_a_concept_scaled_by_1e38_is_refused_on_load(concept_file, tmp_path):
    concept = load_concept(concept_file)
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(concept_bytes(Concept(concept.token, concept.vector * 1e38, concept.metadata)))
    with pytest.raises(ConceptFileError, match="beyond the bound 1000"):
        load_concept(huge)


def test_non_finite_outputs_are_never_written(tiny_decoder, tmp_path):
    with pytest.raises(UsageError, match="NaN or infinite"):
        finite_images(np.full((1, 4, 4, 3), np.nan, dtype=np.float32), "The image")
    with pytest.raises(UsageError, match="image_embeds came out NaN"):
        check_finite_tensors({"image_embeds": torch.tensor([[1.0, math.inf]])}, "--out x")
    with pytest.raises(ConceptFileError, match="NaN or infinite"):
        save_concept(Concept("<n>", torch.full((8,), math.nan), {}), tmp_path / "n.safetensors")
    assert not (tmp_path / "n.safetensors").exists()
    width = tiny_decoder.pipeline.unet.config.encoder_hid_dim
    nan = torch.full((1, width), math.nan)
    with pytest.raises(UsageError, match="seed 3 came out NaN"):
        render_image_embeds(tiny_decoder, nan, torch.zeros(1, width), 3, RenderSettings(size=32, steps=2))


def _renders(folder: Path) -> dict:
    images = [Image.new("RGB", (8, 8), colour) for colour in ("red", "green", "blue")]
    source = {"method": "plain", "count": 3}
    save_renders(images, folder, source)
    return source


def test_a_resumed_protocol_refuses_renders_that_are_not_those_it_recorded(tmp_path):
    folder = tmp_path / "plain"
    source = _renders(folder)
    assert already_rendered(folder, source, force=False)
    (folder / "0001.png").unlink()  # one deleted: n 2 where the record says 3
    with pytest.raises(UsageError, match=r"0001\.png, which its render record lists, is missing"):
        already_rendered(folder, source, force=False)
    shutil.copy(folder / "0000.png", folder / "0001.png")  # put back, but another image's bytes
    with pytest.raises(UsageError, match=r"0001\.png is not the image its render record hashed"):
        already_rendered(folder, source, force=False)
    assert not already_rendered(folder, source, force=True) and not folder.exists()  # --force renders again


def test_a_render_record_must_list_as_many_images_as_its_count(tmp_path):
    folder = tmp_path / "plain"
    _renders(folder)
    record = render_source(folder)
    del record["files"]["0002.png"]
    (folder / ".rendered.json").write_text(json.dumps(record))
    source = {key: value for key, value in record.items() if key != "files"}
    with pytest.raises(UsageError, match="lists 2 images for a count of 3"):
        already_rendered(folder, source, force=False)


def test_imagine_rows_rerender_unhashed_images_and_refuse_changed_ones(tmp_path):
    request = ImagineRequest(category="pet", n=2, model="tiny", out=tmp_path)
    for seed in (0, 1):
        Image.new("RGB", (8, 8), "red").save(tmp_path / f"{seed}.png")
    assert _imagined_hashes(request, force=False) == {} and not (tmp_path / "0.png").exists()  # interrupted: again
    Image.new("RGB", (8, 8), "red").save(tmp_path / "0.png")
    good = {"0.png": hashlib.sha256((tmp_path / "0.png").read_bytes()).hexdigest()}
    (tmp_path / IMAGINED_HASHES).write_text(json.dumps(good))
    assert _imagined_hashes(request, force=False) == good
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "0.png")  # swapped after the protocol hashed it
    with pytest.raises(UsageError, match="not the image this protocol rendered"):
        _imagined_hashes(request, force=False)
    assert _imagined_hashes(request, force=True) == {}


# class 7: embed's default is what sample paints and what a stock prior pipeline returns by default ---------------


def test_embed_s_default_rows_are_what_sample_paints(concept_file, tmp_path, monkeypatch):
    """The stock pipeline's side is test_portability's `test_embed_rows_equal_the_stock_pipeline_row_by_row`."""
    painted = []

    def capture(decoder, image_embeds, negative_image_embeds, seed, settings):
        painted.append((image_embeds.float().cpu(), negative_image_embeds.float().cpu()))
        return [Image.new("RGB", (settings.size, settings.size))]

    monkeypatch.setattr(render_module, "render_image_embeds", capture)
    cache = ModelCache()
    common = {"concepts": (concept_file,), "prompt": "a photo of a {}", "n": 2, "seed": 7, "model": "tiny"}
    sample(SampleRequest(**common, device="cpu", steps=1, out=tmp_path / "painted"), cache=cache)
    default = embed(EmbedRequest(**common, device="cpu", out=tmp_path / "default.safetensors"), cache=cache)
    empty = embed(EmbedRequest(**common, negative_prompt="", out=tmp_path / "empty.safetensors"), cache=cache)
    assert len(painted) == 2
    for row, (image_embeds, negative_image_embeds) in enumerate(painted):
        torch.testing.assert_close(default.image_embeds[row : row + 1], image_embeds)
        torch.testing.assert_close(default.negative_image_embeds[row : row + 1], negative_image_embeds)
    assert not torch.allclose(empty.image_embeds, default.image_embeds), "'' runs the prior on other noise"


def test_a_fifo_in_place_of_the_imagine_row_s_hashes_never_hangs(tmp_path):
    os.mkfifo(tmp_path / IMAGINED_HASHES)
    Image.new("RGB", (8, 8), "red").save(tmp_path / "0.png")
    request = ImagineRequest(category="pet", n=1, model="tiny", out=tmp_path)
    assert _imagined_hashes(request, force=False) == {} and not (tmp_path / "0.png").exists()
