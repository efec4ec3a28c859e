"""Hostile records (issue 29, classes 1, 4, 5 and 6): what a record names, how it is opened, what it must hold, and
the seams around printing and writing.

Every record kind (imagine.json, timing.json, the render record, the settings file) is read through one validated
reader: a path it names resolves inside its folder, a FIFO is never opened for a blocking read, size and nesting are
bounded, and each field has its kind. Each refusal is one line, before any weights load; nothing outside an output
folder is read into it or written. No case may hang: FIFO cases run under an alarm.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import PIL.Image
import pytest
import torch

from conceptlab.engine.adaptive.answers import MAX_ANSWER_CHARS, checked_answers
from conceptlab.engine.adaptive.vocabulary import read_vocabulary
from conceptlab.engine.concept.file import Concept, save_concept
from conceptlab.engine.errors import BackendError, UsageError
from conceptlab.engine.evaluation.judge import Judge
from conceptlab.engine.evaluation.metrics import EvaluationTarget
from conceptlab.engine.evaluation.timing_record import TIMING_FILE, read_timing
from conceptlab.engine.imagine import ImagineRequest, imagine
from conceptlab.engine.imagine import run as imagine_run
from conceptlab.engine.imagine.pick import PickRequest, pick
from conceptlab.engine.imagine.record import RECORD, read_imagine_record
from conceptlab.engine.imagine.request import ImageRecord, ImagineProgress, ImagineResult
from conceptlab.engine.io.images import RENDER_RECORD, render_source, write_png
from conceptlab.engine.io.lock import RunLock
from conceptlab.engine.io.records import MAX_RECORD_BYTES, RecordError
from conceptlab.engine.models import doctor
from conceptlab.engine.models.settings import load_settings
from conceptlab.engine.rendering.sample import fill_prompt, model_prompt

SECRET = b"outside the run: must never be copied or overwritten\n"
DEEP = "[" * 100_000 + "]" * 100_000


@contextmanager
def no_hang(seconds: int = 20):
    """Fail instead of hanging: a FIFO opened for a blocking read would never return."""

    def expired(*_):
        raise TimeoutError(f"hung for {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _image(seed: int = 0, file: str = "0.png", **changes) -> dict:
    entry = {
        "seed": seed,
        "file": file,
        "negatives": [{"word": "cat", "step": 1, "source": "oracle"}],
        "answers": [{"step": 0, "answer": "a cat"}],
        "seconds_denoising": 0.5,
        "seconds_asking": 0.1,
    }
    return entry | changes


def _run(folder: Path, *images: dict, record: object = None) -> Path:
    """A finished imagine run made by hand: one 8 px PNG per seed and the record (`record` replaces it whole)."""
    folder.mkdir(parents=True, exist_ok=True)
    images = images or (_image(),)
    for image in images:
        if image.get("file") == f"{image.get('seed')}.png":
            write_png(folder / image["file"], PIL.Image.new("RGB", (8, 8), "red"))
    settings = {"category": "pet", "prompt": "a photo of a new type of {}", "model": "tiny", "steps": 2}
    data = {"format": 1, "settings": settings, "images": list(images)} if record is None else record
    (folder / RECORD).write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return folder


def _one_error_line(code: int, err: str) -> str:
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), (code, err)
    return lines[0]


@pytest.fixture
def outside(tmp_path) -> Path:
    """A file outside every run and output folder of a test, holding `SECRET`."""
    path = tmp_path / "outside.txt"
    path.write_bytes(SECRET)
    return path


def _escape_run(tmp_path: Path, outside: Path, how: str) -> Path:
    """A run whose record names a file outside it: through `..`, an absolute path, or a link named like its image."""
    run = tmp_path / "runs" / "a" / "run"
    if how == "dotdot":
        return _run(run, _image(file="../../../outside.txt"))
    if how == "absolute":
        return _run(run, _image(file=str(outside)))
    _run(run)
    (run / "0.png").unlink()
    (run / "0.png").symlink_to(outside)
    return run


def _nothing_has_the_secret(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert path.read_bytes() != SECRET, f"{path} holds a file from outside the run"


# Class 1: a record's paths are trusted


@pytest.mark.parametrize("how", ["dotdot", "absolute", "link"])
def test_pick_refuses_a_record_naming_a_file_outside_its_run(run_cli, tmp_path, outside, monkeypatch, how):
    run = _escape_run(tmp_path, outside, how)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    target = tmp_path / "outside.txt"
    code, out, err = run_cli("pick", run, "--seeds", "0", "--out", "deep/picked")
    line = _one_error_line(code, err)
    assert "images[0].file" in line and "outside" in line, line
    assert target.read_bytes() == SECRET and not (work / "deep").exists() and out == ""


def test_pick_never_writes_through_a_link_inside_out(tmp_path, outside):
    run = _run(tmp_path / "run", _image(file="sub/0.png"))
    write_png(run / "sub" / "0.png", PIL.Image.new("RGB", (8, 8), "red"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "picked"
    out.mkdir()
    (out / "sub").symlink_to(elsewhere)  # a copy to out/sub/0.png would land in elsewhere/
    with pytest.raises(RecordError, match="resolves outside"):
        pick(PickRequest(run, (0,), out))
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("how", ["dotdot", "absolute", "link"])
def test_the_gallery_copies_no_file_from_outside_a_run_into_the_site(run_cli, tmp_path, outside, how):
    _escape_run(tmp_path, outside, how)
    _run(tmp_path / "runs" / "good")
    site = tmp_path / "site"
    code, out, err = run_cli("gallery", tmp_path / "runs", "--out", site)
    assert code == 0, err
    assert "1 imagine run(s)" in out
    skipped = [line for line in err.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and "a/run/imagine.json" in skipped[0], err
    _nothing_has_the_secret(site)


def test_the_gallery_copies_no_concept_picture_linked_to_a_file_outside(run_cli, tmp_path):
    run = tmp_path / "runs" / "new-pet"
    save_concept(Concept("<new-pet>", torch.zeros(8), {"category": "pet"}), run / "new-pet.safetensors")
    private = tmp_path / "private.png"  # a real picture: only where it lies keeps it out of the site
    write_png(private, PIL.Image.new("RGB", (8, 8), "blue"))
    (run / "images").mkdir()
    (run / "images" / "strip.png").symlink_to(private)
    code, _, err = run_cli("gallery", tmp_path / "runs", "--out", tmp_path / "site")
    assert code == 0, err
    assert any(line.startswith("skipped") and "strip.png: resolves outside" in line for line in err.splitlines()), err
    copied = [path for path in (tmp_path / "site").rglob("*.png") if path.read_bytes() == private.read_bytes()]
    assert copied == []


@pytest.mark.parametrize("how", ["dotdot", "absolute", "link"])
def test_an_imagine_rerun_reads_nothing_from_outside_and_rewrites_nothing(tmp_path, outside, monkeypatch, how):
    run = _escape_run(tmp_path, outside, how)
    before = (run / RECORD).read_bytes()
    monkeypatch.setattr(imagine_run, "load", lambda *a, **k: pytest.fail("loaded weights before refusing"))
    request = ImagineRequest(category="pet", n=1, model="tiny", device="cpu", steps=2, out=run)
    with pytest.raises(RecordError, match=r"images\[0\]\.file"):
        imagine(request)
    assert (run / RECORD).read_bytes() == before and not (run / "imagine-grid.png").exists()


# Class 4: hangs


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("command", ["pick", "gallery", "rerun"])
def test_a_fifo_named_imagine_json_is_refused_without_opening_it(run_cli, tmp_path, monkeypatch, command):
    run = tmp_path / "runs" / "run"
    _fifo(run / RECORD)
    monkeypatch.setattr(imagine_run, "load", lambda *a, **k: pytest.fail("loaded weights before refusing"))
    with no_hang():
        if command == "pick":
            line = _one_error_line(*run_cli("pick", run, "--seeds", "0", "--out", tmp_path / "p")[::2])
        elif command == "gallery":
            code, _, err = run_cli("gallery", tmp_path / "runs", "--out", tmp_path / "site")
            line = err.splitlines()[0]
            assert code == 2 and "No concept files" in err
        else:
            request = ImagineRequest(category="pet", n=1, model="tiny", device="cpu", out=run)
            with pytest.raises(RecordError) as refused:
                imagine(request)
            line = str(refused.value)
    assert "not a regular file" in line, line


@pytest.mark.parametrize(
    "reader",
    [
        lambda folder: read_timing(folder),
        lambda folder: render_source(folder),
        lambda folder: read_vocabulary(folder / "vocab.txt"),
    ],
    ids=["timing", "render-record", "vocab"],
)
def test_every_other_record_refuses_a_fifo_without_blocking(tmp_path, reader):
    for name in (TIMING_FILE, RENDER_RECORD, "vocab.txt"):
        _fifo(tmp_path / name)
    with no_hang(), pytest.raises(UsageError, match="not a regular file"):
        reader(tmp_path)


def test_the_settings_file_refuses_a_fifo_and_a_huge_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CONCEPTLAB_CONFIG", str(_fifo(tmp_path / "fifo.toml")))
    with no_hang(), pytest.raises(UsageError, match="not a regular file"):
        load_settings()
    huge = tmp_path / "huge.toml"
    with huge.open("wb") as file:
        file.truncate(64 * 1024 * 1024)  # sparse: nothing read, refused by its size
    monkeypatch.setenv("CONCEPTLAB_CONFIG", str(huge))
    with pytest.raises(UsageError, match="too large"):
        load_settings()


def test_a_record_larger_than_the_bound_is_refused_unread(tmp_path):
    run = _run(tmp_path / "run")
    os.truncate(run / RECORD, MAX_RECORD_BYTES + 1)
    with pytest.raises(RecordError, match="too large"):
        read_imagine_record(run)


def test_an_oracles_megabyte_answer_is_cut_where_answers_are_cleaned():
    answers = checked_answers(["x" * 1_000_000, "a cat"], object())
    assert [len(answer) for answer in answers] == [MAX_ANSWER_CHARS, 5]


def _fake_imagine(word: str, out: Path):
    """`imagine` as the command calls it, reporting `word` as a new negative and an image whose file is `out/...`."""

    def run(request, progress):
        progress(ImagineProgress(0, 1, 0, 1, 2, added=(word,)))
        negatives = ({"word": word, "step": 1, "source": "oracle"},)
        image = ImageRecord(0, out / f"{word[:20]}.png", negatives, (), 0.1, 0.1)
        return ImagineResult(out, (image,), out / "imagine-grid.png", out / RECORD)

    return run


def test_a_long_word_prints_in_linear_time(run_cli, tmp_path, monkeypatch):
    import conceptlab.cli.imagine as command

    word = "ab-" * 15_000  # 45k characters: 11.6 s in rich's highlighter before, quadratic
    monkeypatch.setattr(command, "imagine", _fake_imagine(word, tmp_path))
    started = time.perf_counter()
    code, out, err = run_cli("imagine", "--category", "pet", "--model", "tiny", "--out", tmp_path)
    assert code == 0, err
    assert time.perf_counter() - started < 3.0
    assert word in err.replace("\n", "") and word in out.replace("\n", "")


# Class 5: records read without a schema

BAD_IMAGINE_RECORDS = {
    "seconds-as-text": ([_image(seconds_denoising="abc")], r"images\[0\]\.seconds_denoising must be a finite"),
    "negatives-a-number": ([_image(negatives=5)], r"images\[0\]\.negatives must be a list"),
    "negatives-as-words": ([_image(negatives=["cat"])], r"images\[0\]\.negatives\[0\] must be a table"),
    "missing-seed": ([{k: v for k, v in _image().items() if k != "seed"}], r"images\[0\] has no 'seed'"),
    "seed-as-text": ([_image(seed="0")], r"images\[0\]\.seed must be an integer"),
    "seed-beyond-64-bits": ([_image(seed=2**64)], "is not a seed"),
    "seconds-nan": ([_image(seconds_asking=float("nan"))], "must be a finite number"),
    "images-a-table": ({"format": 1, "settings": {}, "images": {}}, "images must be a list"),
    "settings-a-list": ({"format": 1, "settings": [], "images": []}, "settings must be a table"),
    "format-999": ({"format": 999, "settings": {}, "images": []}, "newer than this conceptlab reads"),
    "format-text": ({"format": "1", "settings": {}, "images": []}, "unknown record format '1'"),
    "format-missing": ({"settings": {}, "images": []}, "unknown record format None"),
    "a-list": ([1, 2], "not an imagine record"),
    "deep": (DEEP, "nested too deeply"),
    "deep-but-parsable": ({"format": 1, "settings": json.loads("[" * 200 + "]" * 200), "images": []}, "more than"),
    "not-json": ("{format: 1", "is not JSON"),
}


@pytest.mark.parametrize("case", BAD_IMAGINE_RECORDS, ids=list(BAD_IMAGINE_RECORDS))
def test_an_imagine_record_of_the_wrong_shape_is_refused_in_one_line(tmp_path, case):
    content, message = BAD_IMAGINE_RECORDS[case]
    record = content if not isinstance(content, list) or not isinstance(content[0], dict) else None
    run = _run(tmp_path / "run", *([] if record is not None else content), record=record)
    with pytest.raises(RecordError, match=message) as refused:
        read_imagine_record(run)
    assert "\n" not in str(refused.value) and str(run / RECORD) in str(refused.value)


@pytest.mark.parametrize("case", ["seconds-as-text", "negatives-a-number", "deep", "format-999"])
def test_pick_and_the_gallery_refuse_a_bad_record_in_one_line(run_cli, tmp_path, case):
    content, message = BAD_IMAGINE_RECORDS[case]
    record = content if not isinstance(content, list) else None
    run = _run(tmp_path / "runs" / "run", *([] if record is not None else content), record=record)
    line = _one_error_line(*run_cli("pick", run, "--seeds", "0", "--out", tmp_path / "p")[::2])
    assert re.search(message, line) and not (tmp_path / "p").exists(), line
    code, _, err = run_cli("gallery", tmp_path / "runs", "--out", tmp_path / "site")
    assert code == 2 and "No concept files" in err and err.startswith("skipped"), err


def test_an_imagine_rerun_refuses_a_bad_record_before_loading(tmp_path, monkeypatch):
    run = _run(tmp_path / "run", _image(negatives=5))
    monkeypatch.setattr(imagine_run, "load", lambda *a, **k: pytest.fail("loaded weights before refusing"))
    with pytest.raises(RecordError, match="negatives must be a list"):
        imagine(ImagineRequest(category="pet", n=1, model="tiny", device="cpu", out=run))


def test_a_record_with_a_newer_writers_extra_fields_is_read(tmp_path):
    run = _run(tmp_path / "run", _image(preset="paper", main_object="cat"))
    assert read_imagine_record(run).images[0].negatives[0]["word"] == "cat"


BAD_TIMINGS = {
    "seconds-as-text": ({"render-seconds": "abc"}, "render-seconds must be a list"),
    "seconds-items-text": ({"train-seconds": ["1"]}, r"train-seconds\[0\] must be a finite number"),
    "negative-seconds": ({"render-seconds": [-1.0]}, "negative number of seconds"),
    "a-list": ([1.0], "not a table of seconds"),
    "deep": (DEEP, "nested too deeply"),
}


@pytest.mark.parametrize("case", BAD_TIMINGS, ids=list(BAD_TIMINGS))
def test_a_timing_record_of_the_wrong_shape_is_refused(tmp_path, case):
    content, message = BAD_TIMINGS[case]
    (tmp_path / TIMING_FILE).write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(RecordError, match=message):
        read_timing(tmp_path)


def test_a_timing_record_supplies_only_seconds(tmp_path):
    forged = {"positive": [99.0], "vendi": [123456.0], "novelty": [-5], "render-seconds": [0.25], "train-seconds": [3]}
    (tmp_path / TIMING_FILE).write_text(json.dumps(forged))
    assert read_timing(tmp_path) == {"render-seconds": [0.25], "train-seconds": [3.0]}
    assert read_timing(tmp_path / "absent") == {}


@pytest.mark.parametrize("content", ["[1, 2]", DEEP, "{nope"], ids=["a-list", "deep", "not-json"])
def test_a_render_record_of_the_wrong_shape_is_refused(tmp_path, content):
    (tmp_path / RENDER_RECORD).write_text(content)
    with pytest.raises(RecordError):
        render_source(tmp_path)


def test_a_settings_file_nested_100k_deep_is_refused_in_one_line(tmp_path, monkeypatch):
    deep = tmp_path / "deep.toml"
    deep.write_text(f"a = {DEEP}\n")
    monkeypatch.setenv("CONCEPTLAB_CONFIG", str(deep))
    with pytest.raises(UsageError, match="nested too deeply"):
        load_settings()


class Replying:
    name = "replying"

    def __init__(self, reply):
        self.reply = reply

    def ask(self, images, question, known):
        return self.reply


@pytest.mark.parametrize("reply", [None, 5, [["cat"]], [3], "cat"], ids=["none", "int", "nested", "ints", "text"])
def test_an_oracle_or_judge_answering_other_than_texts_is_one_clear_error(reply):
    with pytest.raises(BackendError, match="oracle replying answered"):
        checked_answers(reply, Replying(reply))
    target = EvaluationTarget("pet", (), ("cat", "dog"))
    with pytest.raises(BackendError, match="one per image"):
        Judge("replying", Replying(reply)).judge([PIL.Image.new("RGB", (8, 8))], target)


# Class 6: escapes and smaller seams

ESCAPES = "pet\x1b]0;PWNED\x07\x1b[2J\u202e"


def test_imagine_prints_category_negatives_and_files_through_the_escaping_point(run_cli, tmp_path, monkeypatch):
    import conceptlab.cli.imagine as command

    monkeypatch.setattr(command, "imagine", _fake_imagine("dog\x1b[31m\u202ered", tmp_path / ESCAPES))
    code, out, err = run_cli("imagine", "--category", ESCAPES, "--neg", "x\x1b[2J\u202e", "--out", tmp_path)
    assert code == 0, err
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in out + err
    assert "\\x1b]0;PWNED" in out.replace("\n", "") and "\\u202e" in err


def test_pick_prints_a_hostile_file_name_escaped(run_cli, tmp_path):
    name = "\x1b]0;PWNED\x07.png"
    run = _run(tmp_path / "run", _image(file=name))
    write_png(run / name, PIL.Image.new("RGB", (8, 8), "red"))
    code, out, err = run_cli("pick", run, "--seeds", "0", "--out", tmp_path / "picked")
    assert code == 0, err
    assert "\x1b" not in out and "\\x1b]0;PWNED" in out.replace("\n", "")


def test_imagine_takes_the_folder_lock_before_loading(tmp_path, monkeypatch):
    monkeypatch.setattr(imagine_run, "load", lambda *a, **k: pytest.fail("loaded weights while the folder is held"))
    out = tmp_path / "run"
    out.mkdir()
    with RunLock(out), pytest.raises(UsageError, match="in use by process"):
        imagine(ImagineRequest(category="pet", n=1, model="tiny", device="cpu", seeds=(1,), out=out))
    assert sorted(path.name for path in out.iterdir()) == []


def test_imagine_out_a_file_is_refused_before_loading(tmp_path, monkeypatch):
    monkeypatch.setattr(imagine_run, "load", lambda *a, **k: pytest.fail("loaded weights before refusing"))
    file = tmp_path / "file.png"
    file.write_bytes(SECRET)
    with pytest.raises(UsageError, match="is a file, not a folder"):
        imagine(ImagineRequest(category="pet", n=1, model="tiny", device="cpu", out=file))
    assert file.read_bytes() == SECRET


class _Pipeline:
    vae_scale_factor, patch_size = 8, 2


def test_a_size_the_model_would_round_is_refused_not_recorded_wrong():
    with pytest.raises(UsageError, match="--size 33: this model needs a multiple of 16"):
        imagine_run._check_pipeline_size(_Pipeline(), 33)
    imagine_run._check_pipeline_size(_Pipeline(), 48)


def test_a_size_kandinsky_would_round_is_refused_after_loading_before_any_image(tmp_path, monkeypatch, tiny_decoder):
    request = ImagineRequest(category="pet", n=1, model="tiny", device="cpu", dtype="float32", size=33, out=tmp_path)
    monkeypatch.setattr(imagine_run, "load_decoder", lambda prior: tiny_decoder)
    monkeypatch.setattr(imagine_run, "load_prior", lambda choice: object())
    with pytest.raises(UsageError, match="--size 33"):
        imagine_run.load(request)
    with pytest.raises(UsageError, match="--size 33"):
        imagine(replace(request, out=tmp_path / "new"))
    assert not (tmp_path / "new").exists(), "a refused run leaves no empty folder"


def test_a_concept_token_is_replaced_as_a_whole_token_only():
    class Named:
        token = "e"

    assert model_prompt("a photo of the e", [Named()], ["<t>"]) == "a photo of the <t>"
    with pytest.raises(UsageError, match="no concept token"):
        fill_prompt("the thing", ["e"])


def test_doctor_bounds_its_walk_and_never_leaves_the_hub_cache(tmp_path, monkeypatch):
    many = tmp_path / "many"
    many.mkdir()
    for index in range(12):
        (many / f"{index}.safetensors").write_bytes(b"x")
    assert doctor._weights_bytes(many) == 12
    monkeypatch.setattr(doctor, "MAX_WALK_ENTRIES", 10)
    assert doctor._weights_bytes(many) is None
    repo = tmp_path / "cache" / "models--owner--name"
    (repo / "refs").mkdir(parents=True)
    (repo / "snapshots").mkdir()
    (repo / "refs" / "main").write_text("../../..")
    assert doctor._snapshot(repo, None) is None
    assert doctor._snapshot(repo, "../../..") is None
    commit = "0" * 40
    (repo / "snapshots" / commit).mkdir()
    (repo / "refs" / "main").write_text(commit + "\n")
    assert doctor._snapshot(repo, None) == repo / "snapshots" / commit
    assert not doctor.is_hub_id("owner/../../etc") and not doctor.is_hub_id("owner/..")
    assert doctor.is_hub_id("kandinsky-community/kandinsky-2-2-prior")


@pytest.mark.parametrize("value", ["1", " 1", "true", "TRUE", "yes", "on", "0", "", "1 ", "y"])
def test_doctor_reads_hf_hub_offline_as_huggingface_hub_does(monkeypatch, value):
    from huggingface_hub.constants import _is_true

    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert doctor.hub_offline() == _is_true(value or None)
