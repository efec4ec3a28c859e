"""Resources: a full disk names the file it could not write and a rerun finishes what is missing; no run is
aimed at a filesystem root or the home folder; the negatives a machine cannot hold are refused before training."""

import errno
import os
from pathlib import Path

import pytest
import torch

from conceptlab.engine.concept.file import Concept, load_concept, save_concept
from conceptlab.engine.io import atomic
from conceptlab.engine.training import create as create_module

ARGS = ("create", "--category", "pet", "--neg", "cat,dog", "--model", "tiny", "--device", "cpu", "--seed", "3")
QUICK = ("--steps", "6", "--every", "3", "--no-images")


def no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    from conceptlab.cli.app import main

    out = tmp_path_factory.mktemp("uninterrupted")
    assert main([*ARGS, *QUICK, "--out", str(out)]) == 0
    return out


def _same_concept(first: Path, second: Path) -> None:
    a, b = load_concept(first / "new-pet.safetensors"), load_concept(second / "new-pet.safetensors")
    assert a.vector.numpy().tobytes() == b.vector.numpy().tobytes()
    assert {k: v for k, v in a.metadata.items() if k != "created"} == {
        k: v for k, v in b.metadata.items() if k != "created"
    }
    assert (first / "log.jsonl").read_bytes() == (second / "log.jsonl").read_bytes()
    assert (first / "similarities.png").read_bytes() == (second / "similarities.png").read_bytes()


def _disk_full_once(monkeypatch, name: str) -> None:
    """The first atomic write of a file called `name` fails as on a full disk, inside `write_atomically` (after the
    bytes went to the temporary file); later writes work again (space was freed)."""
    real = os.replace
    failed = {"yet": False}

    def replace(source, target, *args, **kwargs):
        if not failed["yet"] and Path(target).name == name:
            failed["yet"] = True
            no_space()
        return real(source, target, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "replace", replace)


def _log_full_at_step(monkeypatch, step: int) -> None:
    real = create_module.write_log_line

    def write_log_line(log, record):
        if record.get("step") == step:
            log.write = no_space
        return real(log, record)

    monkeypatch.setattr(create_module, "write_log_line", write_log_line)


FULL_DISK_AT = ("similarities.png", "new-pet.safetensors", "log.jsonl")


@pytest.mark.parametrize("name", FULL_DISK_AT)
def test_a_full_disk_names_the_file_and_resume_finishes_the_run(run_cli, tmp_path, monkeypatch, uninterrupted, name):
    if name == "log.jsonl":
        _log_full_at_step(monkeypatch, 5)
    else:
        _disk_full_once(monkeypatch, name)
    out = tmp_path / "run"
    code, _, err = run_cli(*ARGS, *QUICK, "--out", out)
    assert code == 1, err
    line = err.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in err, err
    assert str(out) in line and name in line and "No space left on device" in line and "--resume" in line, line
    assert not (out / "new-pet.safetensors").exists()
    assert not list(out.rglob("*.tmp"))  # no temporary file left behind
    monkeypatch.undo()
    code, _, err = run_cli("create", "--resume", out)
    assert code == 0, err
    _same_concept(out, uninterrupted)


def test_a_failed_atomic_write_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.os, "fsync", no_space)
    target = tmp_path / "out" / "concept.safetensors"
    with pytest.raises(OSError) as raised:
        atomic.write_atomically(target, b"data")
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(target)
    assert list((tmp_path / "out").iterdir()) == []


HOME = str(Path.home())
SYSTEM_FOLDERS = ("/", "//", "/.", HOME, f"{HOME}/", f"{HOME}/../{Path(HOME).name}", "/proc")
"""The root, the home folder (spelt several ways) and a mount point."""


@pytest.mark.parametrize("folder", SYSTEM_FOLDERS)
def test_create_gallery_and_batch_refuse_a_filesystem_root_or_home(run_cli, tmp_path, folder):
    if folder == "/proc" and not os.path.ismount("/proc"):
        pytest.skip("no /proc mount on this machine")
    before = sorted(os.listdir(folder))
    save_concept(Concept("<x>", torch.ones(4), {"category": "pet"}), tmp_path / "runs" / "x.safetensors")
    plan = f'[plan]\nout = "{folder}"\n\n[[job]]\nname = "a"\nrun = "create"\ncategory = "pet"\n'
    (tmp_path / "plan.toml").write_text(plan)
    for args in (
        (*ARGS, *QUICK, "--out", folder, "--force"),
        ("gallery", tmp_path / "runs", "--out", folder, "--force"),
        ("batch", tmp_path / "plan.toml"),
    ):
        code, _, err = run_cli(*args)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert "filesystem root" in err or "home folder" in err, err
    if folder != "/proc":  # its listing follows the processes
        assert sorted(os.listdir(folder)) == before


# Negatives: the constraint bank keeps only what it needs, and too many are refused before training


def test_the_bank_encodes_a_bounded_batch_at_a_time_and_keeps_only_the_embeddings(tiny, monkeypatch):
    from conceptlab.engine.prior import tokens
    from conceptlab.engine.training import constraints
    from conceptlab.engine.training.templates import OBJECT_TEMPLATES

    batches = []
    real = tokens.encode_prompts

    def spy(tokenizer, encoder, prompts):
        batches.append(len(prompts))
        return real(tokenizer, encoder, prompts)

    monkeypatch.setattr(constraints, "encode_prompts", spy)
    bank = constraints.ConstraintBank(tiny.stack.tokenizer, tiny.stack.text_encoder, OBJECT_TEMPLATES)
    words = [f"thing{index}" for index in range(40)]
    bank.add_words(words)
    assert max(batches) <= constraints.ENCODE_BATCH and sum(batches) == 40 * len(OBJECT_TEMPLATES)
    width = tiny.stack.text_encoder.config.projection_dim
    assert bank._embeds.shape == (len(OBJECT_TEMPLATES), 40, width)  # nothing per token, nothing per layer
    alone = constraints.ConstraintBank(tiny.stack.tokenizer, tiny.stack.text_encoder, OBJECT_TEMPLATES)
    alone.add_words(["thing33"])
    assert torch.allclose(bank.embeds(5, ["thing33"]), alone.embeds(5, ["thing33"]), atol=1e-6)


def test_more_negatives_than_the_machine_holds_are_refused_before_the_folder_is_touched(run_cli, tmp_path, monkeypatch):
    from conceptlab.engine.training import constraints

    monkeypatch.setattr(constraints, "available_memory", lambda device: 8 * 1024 * 1024)
    negatives = ",".join(f"thing{index}" for index in range(999))  # within --neg's 1000 items
    args = ("create", "--category", "pet", "--neg", negatives, "--model", "tiny", "--device", "cpu", *QUICK)
    code, _, err = run_cli(*args, "--out", tmp_path / "run")
    assert code == 2, err
    line = err.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in err
    from conceptlab.engine.training.templates import OBJECT_TEMPLATES

    most = 4 * 1024 * 1024 // (len(OBJECT_TEMPLATES) * 64 * 4)  # half the 8 MiB, over 54 templates x 64 floats
    assert "1000 constraint words need" in line and f"give at most {most:,} negatives" in line, line
    assert not (tmp_path / "run").exists()
