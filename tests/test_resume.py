"""Interruption, resume to the same bytes, NaN steps, and one run per folder."""

import dataclasses
import importlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conceptlab.engine.concept.file import load_concept
from conceptlab.engine.errors import ConceptFileError
from conceptlab.engine.io.lock import LOCK_NAME
from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.training import loop as train_module
from conceptlab.engine.training.config import create_config, mix_config
from conceptlab.engine.training.create import RunCallbacks, create, resume
from conceptlab.engine.training.evolve import evolve
from conceptlab.engine.training.interrupt import TrainingInterrupted
from conceptlab.engine.training.state import load_state

TINY = ModelChoice(model="tiny", device="cpu", dtype="float32")
CONFIG = create_config("pet", ("cat", "dog"), steps=12, checkpoint_every=5, seed=1)


def _same_run(a, b):
    """Same tensor bytes, same metadata except the creation time, same log bytes."""
    first, second = load_concept(a / "new-pet.safetensors"), load_concept(b / "new-pet.safetensors")
    assert first.vector.numpy().tobytes() == second.vector.numpy().tobytes()
    assert {k: v for k, v in first.metadata.items() if k != "created"} == {
        k: v for k, v in second.metadata.items() if k != "created"
    }
    assert (a / "log.jsonl").read_bytes() == (b / "log.jsonl").read_bytes()
    assert (a / "images" / "strip.png").read_bytes() == (b / "images" / "strip.png").read_bytes()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    create(CONFIG, TINY, out=out)
    return out


def _stop_after(step):
    stop = {"requested": False}

    def on_step(record):
        stop["requested"] = stop["requested"] or record.step == step

    return on_step, lambda: stop["requested"]


@pytest.mark.parametrize("stop_at", [1, 5, 9])
def test_resume_after_interruption_gives_the_uninterrupted_bytes(reference, tmp_path, stop_at):
    on_step, should_stop = _stop_after(stop_at)
    with pytest.raises(TrainingInterrupted) as stopped:
        create(CONFIG, TINY, out=tmp_path, callbacks=RunCallbacks(on_step=on_step, should_stop=should_stop))
    assert stopped.value.step == stop_at and stopped.value.exit_code == 130
    state = load_state(tmp_path / "checkpoints" / "state.safetensors")
    assert state.step == stop_at and state.log_lines == stop_at
    assert state.negatives == [{"word": w, "step": 0, "source": "given"} for w in ("cat", "dog")]
    assert not (tmp_path / "new-pet.safetensors").exists() and not (tmp_path / LOCK_NAME).exists()
    resume(tmp_path)
    _same_run(reference, tmp_path)


ADAPTIVE = create_config("pet", steps=12, checkpoint_every=4, seed=2)  # no negatives: the oracle names them


@pytest.fixture(scope="module")
def adaptive_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("adaptive-reference")
    create(ADAPTIVE, TINY, out=out)
    return out


@pytest.mark.parametrize("stop_at", [2, 6])
def test_an_adaptive_run_resumes_with_its_oracle_negatives(adaptive_reference, tmp_path, stop_at):
    on_step, should_stop = _stop_after(stop_at)
    with pytest.raises(TrainingInterrupted):
        create(ADAPTIVE, TINY, out=tmp_path, callbacks=RunCallbacks(on_step=on_step, should_stop=should_stop))
    state = load_state(tmp_path / "checkpoints" / "state.safetensors")
    assert state.negatives and all(n["source"] == "oracle" and n["step"] <= stop_at for n in state.negatives)
    resume(tmp_path)
    _same_run(adaptive_reference, tmp_path)
    assert load_concept(tmp_path / "new-pet.safetensors").metadata["oracle_answers"]


def test_an_interrupted_forced_rerun_resumes(reference, tmp_path):
    """--force over a finished run replaces it: interrupted, the rerun resumes like any other run."""
    shutil.copytree(reference, tmp_path, dirs_exist_ok=True)
    on_step, should_stop = _stop_after(3)
    callbacks = RunCallbacks(on_step=on_step, should_stop=should_stop)
    with pytest.raises(TrainingInterrupted):
        create(dataclasses.replace(CONFIG, seed=7), TINY, out=tmp_path, force=True, callbacks=callbacks)
    assert not (tmp_path / "new-pet.safetensors").exists() and not (tmp_path / "similarities.png").exists()
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 3
    resume(tmp_path)
    assert load_concept(tmp_path / "new-pet.safetensors").metadata["seed"] == 7


def _photo_folders(root):
    from conceptlab.plugins.tiny.world import synthetic_picture

    for word in ("cat", "guitar"):
        (root / word).mkdir(parents=True)
        for variant in range(2):
            synthetic_picture(word, variant).save(root / word / f"{variant}.png")
    return [root / "cat", root / "guitar"]


def _only_concept(folder):
    (path,) = folder.glob("*.safetensors")
    return path


def test_an_interrupted_evolve_and_mix_resume_to_the_same_bytes(tmp_path):
    parents = _photo_folders(tmp_path / "photos")
    evolve_settings = dict(weights=(3.0, 1.0), initializer="pet", steps=10, checkpoint_every=4, images=False)
    evolve(parents, TINY, out=tmp_path / "evolve-reference", **evolve_settings)
    mix = mix_config(("lobster", "turtle"), (0.6, 0.4), steps=10, checkpoint_every=4, images=False)
    create(mix, TINY, out=tmp_path / "mix-reference")
    on_step, should_stop = _stop_after(6)
    callbacks = RunCallbacks(on_step=on_step, should_stop=should_stop)
    with pytest.raises(TrainingInterrupted):
        evolve(parents, TINY, out=tmp_path / "evolve", callbacks=callbacks, **evolve_settings)
    on_step, should_stop = _stop_after(3)
    with pytest.raises(TrainingInterrupted):
        create(mix, TINY, out=tmp_path / "mix", callbacks=RunCallbacks(on_step=on_step, should_stop=should_stop))
    for name in ("evolve", "mix"):
        resume(tmp_path / name)
        first, second = _only_concept(tmp_path / f"{name}-reference"), _only_concept(tmp_path / name)
        assert first.name == second.name
        assert load_concept(first).vector.numpy().tobytes() == load_concept(second).vector.numpy().tobytes(), name
        assert (tmp_path / f"{name}-reference" / "log.jsonl").read_bytes() == (
            tmp_path / name / "log.jsonl"
        ).read_bytes()
    assert [p["weight"] for p in load_concept(_only_concept(tmp_path / "evolve")).metadata["parents"]] == [0.75, 0.25]


def test_resume_rewinds_log_lines_written_after_the_saved_state(reference, tmp_path):
    """A hard kill (no clean stop) can leave log lines past the last saved state; resume drops them."""
    on_step, should_stop = _stop_after(5)
    with pytest.raises(TrainingInterrupted):
        create(CONFIG, TINY, out=tmp_path, callbacks=RunCallbacks(on_step=on_step, should_stop=should_stop))
    with (tmp_path / "log.jsonl").open("a") as log:
        log.write('{"step": 6, "template": "x", "loss": 0.0, "positive": {}, "negative": {}}\n')
    resume(tmp_path)
    _same_run(reference, tmp_path)


def _spy_on_offload(monkeypatch):
    """The `offload` choice of every residency that create and evolve build."""
    chosen = []
    for name in ("conceptlab.engine.training.create", "conceptlab.engine.training.evolve"):
        module = importlib.import_module(name)

        def spy(loaded, decoder, offload, oracle_bytes=0, real=module.prior_and_decoder_residency):
            chosen.append(offload)
            return real(loaded, decoder, offload, oracle_bytes)

        monkeypatch.setattr(module, "prior_and_decoder_residency", spy)
    return chosen


def test_a_resumed_run_keeps_its_offload_choice_and_offloading_keeps_the_bytes(reference, tmp_path, monkeypatch):
    chosen = _spy_on_offload(monkeypatch)
    on_step, should_stop = _stop_after(5)
    callbacks = RunCallbacks(on_step=on_step, should_stop=should_stop)
    with pytest.raises(TrainingInterrupted):
        create(CONFIG, TINY, out=tmp_path, callbacks=callbacks, offload=True)
    resume(tmp_path)
    assert chosen == [True, True]
    _same_run(reference, tmp_path)


@pytest.mark.parametrize("command", ["mix", "evolve"])
def test_mix_and_evolve_take_offload(command, run_cli, tmp_path, monkeypatch):
    chosen = _spy_on_offload(monkeypatch)
    inputs = ["lobster", "turtle"] if command == "mix" else _photo_folders(tmp_path / "photos")
    quick = ("--model", "tiny", "--device", "cpu", "--steps", "2", "--every", "1", "--no-offload")
    code, _, err = run_cli(command, *inputs, *quick, "--out", tmp_path / "run")
    assert code == 0, err
    assert chosen and set(chosen) == {False}


def test_nan_step_stops_with_one_line_and_keeps_the_last_good_checkpoint(run_cli, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_loss = train_module.conceptlab_loss

    def loss_turning_nan_at_step_7(*args):
        calls["n"] += 1
        value = real_loss(*args)
        return dataclasses.replace(value, loss=value.loss * float("nan")) if calls["n"] == 7 else value

    monkeypatch.setattr(train_module, "conceptlab_loss", loss_turning_nan_at_step_7)
    args = ("create", "--category", "pet", "--neg", "cat", "--model", "tiny", "--device", "cpu")
    code, _, err = run_cli(*args, "--steps", "10", "--every", "5", "--out", tmp_path)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Step 7" in err and "not finite" in err
    assert not (tmp_path / "new-pet.safetensors").exists()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "state.safetensors",
        "step-0005.safetensors",
    ]
    assert load_concept(tmp_path / "checkpoints" / "step-0005.safetensors").vector.isfinite().all()
    assert load_state(tmp_path / "checkpoints" / "state.safetensors").step == 5
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_folder_in_use_is_refused(run_cli, tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))
    args = ("create", "--category", "pet", "--model", "tiny", "--device", "cpu", "--steps", "3", "--force")
    code, _, err = run_cli(*args, "--out", tmp_path)
    assert code == 2 and f"in use by process {os.getpid()}" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "log.jsonl").exists()


def test_a_lock_left_by_a_dead_process_is_taken_over(run_cli, tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead_pid, "host": os.uname().nodename}))
    args = ("create", "--category", "pet", "--model", "tiny", "--device", "cpu", "--steps", "3")
    code, _, err = run_cli(*args, "--out", tmp_path)
    assert code == 0, err
    assert (tmp_path / "new-pet.safetensors").exists() and not (tmp_path / LOCK_NAME).exists()


def test_ctrl_c_in_the_console_script_saves_and_resume_finishes(run_cli, tmp_path):
    """The real thing: SIGINT to `conceptlab create`, exit 130 with a resume hint, then `--resume`."""
    out = tmp_path / "run"
    argv = ["create", "--category", "pet", "--neg", "cat", "--model", "tiny", "--device", "cpu", "--steps", "20"]
    argv += ["--seed", "2", "--out", str(out)]
    process = subprocess.Popen(
        [sys.executable, "-c", "from conceptlab.cli.app import run; run()", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not ((out / "log.jsonl").exists() and (out / "log.jsonl").read_text()) and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    hint = err.strip().splitlines()[-1]
    assert hint.startswith("Interrupted after step") and f"conceptlab create --resume {out}" in hint
    stopped_at = load_state(out / "checkpoints" / "state.safetensors").step
    assert 0 < stopped_at < 20 and not (out / "new-pet.safetensors").exists()
    code, _, err = run_cli("create", "--resume", out)
    assert code == 0, err
    assert run_cli(*argv[:-1], tmp_path / "uninterrupted")[0] == 0
    _same_run(tmp_path / "uninterrupted", out)


def test_a_hostile_state_file_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "checkpoints" / "state.safetensors"
    path.parent.mkdir()
    for content in (pickle.dumps(Payload()), os.urandom(200), b""):
        path.write_bytes(content)
        with pytest.raises(ConceptFileError, match="not a valid training state"):
            load_state(path)
    assert not marker.exists()
