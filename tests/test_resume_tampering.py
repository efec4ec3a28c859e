"""Resume trusts nothing it reads: a tampered, damaged or foreign state or log is refused in one line, untouched.

Each row copies a tiny interrupted run, tampers with it, and runs `conceptlab create --resume` on it: exit code 2,
exactly one stderr line naming the file, no traceback, and every file of the folder as it was before.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from conceptlab.engine.io.lock import LOCK_NAME
from conceptlab.engine.io.safetensors_header import encoded_metadata
from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.training.config import create_config, mix_config
from conceptlab.engine.training.create import RunCallbacks, create
from conceptlab.engine.training.interrupt import TrainingInterrupted
from conceptlab.engine.training.state import state_checksum

TINY = ModelChoice(model="tiny", device="cpu", dtype="float32")
PET = create_config("pet", ("cat", "dog"), steps=8, checkpoint_every=3, seed=1, images=False)
MIX = mix_config(("lobster", "turtle"), (0.6, 0.4), steps=8, checkpoint_every=3, seed=1, images=False)
STATE = Path("checkpoints") / "state.safetensors"
LOG = Path("log.jsonl")
CHECKPOINT = Path("checkpoints") / "step-0003.safetensors"


def _interrupted_run(out: Path, config, stop_at: int) -> Path:
    """`config` trained in `out` until a clean stop after step `stop_at`."""
    stop = {"requested": False}

    def on_step(record) -> None:
        stop["requested"] = stop["requested"] or record.step == stop_at

    with pytest.raises(TrainingInterrupted):
        create(config, TINY, out=out, callbacks=RunCallbacks(on_step=on_step, should_stop=lambda: stop["requested"]))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Interrupted runs to tamper with and to take foreign states and logs from (after step 5: checkpoint 3 written;
    after step 2: no checkpoint yet, so only the log can tell whose state it is)."""
    root = tmp_path_factory.mktemp("interrupted")
    return {
        "pet": _interrupted_run(root / "pet", PET, 5),
        "pet-early": _interrupted_run(root / "pet-early", PET, 2),
        "other-seed": _interrupted_run(root / "other-seed", dataclasses.replace(PET, seed=2), 5),
        "other-seed-early": _interrupted_run(root / "other-seed-early", dataclasses.replace(PET, seed=2), 2),
        "other-steps": _interrupted_run(root / "other-steps", dataclasses.replace(PET, steps=9), 5),
        "mix": _interrupted_run(root / "mix", MIX, 5),
    }


Tamper = Callable[[Path, dict[str, Path]], None]


def _state_parts(run: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    data = (run / STATE).read_bytes()
    return load_safetensors(data), dict(encoded_metadata(data) or {})


def _write_state(run: Path, tensors: dict[str, torch.Tensor], encoded: dict[str, str], resign: bool) -> None:
    """Write a state back; `resign` recomputes its checksum, as a tamperer who knows the format would."""
    if resign:
        unsigned = {key: value for key, value in encoded.items() if key != "checksum"}
        encoded = {**unsigned, "checksum": json.dumps(state_checksum(tensors, unsigned))}
    (run / STATE).write_bytes(save_safetensors(tensors, metadata=encoded))


def edit_metadata(key: str, value: object, resign: bool = False) -> Tamper:
    def tamper(run: Path, runs: dict[str, Path]) -> None:
        tensors, encoded = _state_parts(run)
        _write_state(run, tensors, {**encoded, key: json.dumps(value)}, resign)

    return tamper


def edit_raw_metadata(key: str, text: str | None, resign: bool = False) -> Tamper:
    """Set a metadata value's stored text (None: remove the key)."""

    def tamper(run: Path, runs: dict[str, Path]) -> None:
        tensors, encoded = _state_parts(run)
        encoded = {k: v for k, v in encoded.items() if k != key} | ({} if text is None else {key: text})
        _write_state(run, tensors, encoded, resign)

    return tamper


def edit_config(field: str, value: object, resign: bool) -> Tamper:
    def tamper(run: Path, runs: dict[str, Path]) -> None:
        tensors, encoded = _state_parts(run)
        extra = json.loads(encoded["extra"])
        extra["config"][field] = value
        _write_state(run, tensors, {**encoded, "extra": json.dumps(extra, sort_keys=True)}, resign)

    return tamper


def edit_tensor(name: str, change: Callable[[torch.Tensor], torch.Tensor], resign: bool = False) -> Tamper:
    def tamper(run: Path, runs: dict[str, Path]) -> None:
        tensors, encoded = _state_parts(run)
        _write_state(run, {**tensors, name: change(tensors[name].clone()).contiguous()}, encoded, resign)

    return tamper


def _one_value_changed(tensor: torch.Tensor) -> torch.Tensor:
    tensor[7] += 1e-3
    return tensor


def _nan_at_first(tensor: torch.Tensor) -> torch.Tensor:
    tensor[0] = float("nan")
    return tensor


def shrink_all_vectors(run: Path, runs: dict[str, Path]) -> None:
    """A consistent state for a smaller model (vector and moments all cut to 32 values), re-signed."""
    tensors, encoded = _state_parts(run)
    cut = {
        name: tensor[:32].clone() if tensor.dim() == 1 and tensor.dtype == torch.float32 else tensor
        for name, tensor in tensors.items()
    }
    _write_state(run, cut, encoded, resign=True)


def edit_state_bytes(change: Callable[[bytes], bytes]) -> Tamper:
    def tamper(run: Path, runs: dict[str, Path]) -> None:
        (run / STATE).write_bytes(change((run / STATE).read_bytes()))

    return tamper


def _last_byte_flipped(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


def _header_not_utf8(data: bytes) -> bytes:
    return data[:8] + b"\xff\xfe" + data[10:]


def copy_from(name: str, path: Path) -> Tamper:
    def tamper(run: Path, runs: dict[str, Path]) -> None:
        shutil.copyfile(runs[name] / path, run / path)

    return tamper


def edit_log(change: Callable[[list[bytes]], list[bytes]]) -> Tamper:
    def tamper(run: Path, runs: dict[str, Path]) -> None:
        (run / LOG).write_bytes(b"".join(change((run / LOG).read_bytes().splitlines(keepends=True))))

    return tamper


def _loss_edited(lines: list[bytes]) -> list[bytes]:
    record = json.loads(lines[1])
    record["loss"] += 0.5
    return [lines[0], (json.dumps(record) + "\n").encode(), *lines[2:]]


def remove_log(run: Path, runs: dict[str, Path]) -> None:
    (run / LOG).unlink()


def damage_checkpoint(run: Path, runs: dict[str, Path]) -> None:
    (run / CHECKPOINT).write_bytes(b"\x00" * 16)


REFUSED = [
    # corrupt state bytes
    pytest.param("pet", edit_state_bytes(lambda data: data[: len(data) // 2]), STATE, "not a valid", id="state-cut"),
    pytest.param("pet", edit_state_bytes(lambda data: b""), STATE, "not a valid", id="state-empty"),
    pytest.param("pet", edit_state_bytes(_header_not_utf8), STATE, "not a valid", id="state-header-not-utf8"),
    pytest.param("pet", edit_state_bytes(lambda data: b"{}" * 40), STATE, "not a valid", id="state-json-not-st"),
    pytest.param("pet", edit_state_bytes(_last_byte_flipped), STATE, "checksum", id="state-last-byte-flipped"),
    # edited metadata values (checksum kept, then re-signed: the log or the checkpoints still tell)
    pytest.param("pet", edit_metadata("step", 8), STATE, "checksum", id="step-edited"),
    pytest.param("pet", edit_metadata("log_lines", 3), STATE, "checksum", id="log-lines-edited"),
    pytest.param("pet", edit_metadata("negatives", []), STATE, "checksum", id="negatives-dropped"),
    pytest.param("pet", edit_config("seed", 2, resign=False), STATE, "checksum", id="seed-edited"),
    pytest.param("pet", edit_raw_metadata("checksum", None), STATE, "checksum", id="checksum-removed"),
    pytest.param("pet", edit_raw_metadata("step", "{"), STATE, "not a valid", id="step-not-json"),
    pytest.param("pet", edit_raw_metadata("conceptlab.state", "1"), STATE, "format 1", id="old-format"),
    pytest.param("pet", edit_metadata("step", 8, resign=True), LOG, "does not match", id="step-edited-resigned"),
    pytest.param("pet", edit_metadata("step", 4, resign=True), LOG, "does not match", id="step-lowered-resigned"),
    pytest.param(
        "pet", edit_metadata("log_lines", 3, resign=True), LOG, "does not match", id="log-lines-edited-resigned"
    ),
    pytest.param(
        "pet", edit_metadata("log_sha256", "0" * 64, resign=True), LOG, "does not match", id="log-sha-resigned"
    ),
    pytest.param("pet", edit_metadata("step", -1, resign=True), STATE, "damaged", id="step-negative-resigned"),
    pytest.param("pet", edit_metadata("step", "five", resign=True), STATE, "incomplete", id="step-text-resigned"),
    pytest.param("pet", edit_metadata("negatives", ["cat"], resign=True), STATE, "damaged", id="negatives-words"),
    pytest.param("pet", edit_raw_metadata("extra", None, resign=True), STATE, "incomplete", id="extra-removed"),
    pytest.param("pet", edit_metadata("extra", {}, resign=True), STATE, "usable config", id="extra-empty"),
    pytest.param("pet", edit_metadata("extra", {"config": 5}, resign=True), STATE, "usable config", id="config-5"),
    pytest.param("pet", edit_config("seed", 2, resign=True), STATE, "another run", id="seed-edited-resigned"),
    pytest.param("pet", edit_config("token", "<x>", resign=True), STATE, "another run", id="token-edited-resigned"),
    # edited tensors
    pytest.param("pet", edit_tensor("vector", _one_value_changed), STATE, "checksum", id="vector-value"),
    pytest.param("pet", edit_tensor("optimizer.0.exp_avg", _one_value_changed), STATE, "checksum", id="moment-value"),
    pytest.param("pet", edit_tensor("vector", lambda t: t[:32], resign=True), STATE, "damaged", id="vector-cut"),
    pytest.param("pet", edit_tensor("vector", lambda t: t.reshape(8, 8), resign=True), STATE, "damaged", id="vec-2d"),
    pytest.param("pet", edit_tensor("vector", _nan_at_first, resign=True), STATE, "damaged", id="vector-nan"),
    pytest.param("pet", edit_tensor("generator", lambda t: t[:100], resign=True), STATE, "damaged", id="rng-cut"),
    pytest.param("pet", shrink_all_vectors, STATE, "does not fit", id="all-vectors-cut-resigned"),
    # another run's state in this folder
    pytest.param("pet", copy_from("other-seed", STATE), STATE, "another run", id="other-seed-state"),
    pytest.param("pet", copy_from("other-steps", STATE), STATE, "another run", id="other-steps-state"),
    pytest.param("pet", copy_from("mix", STATE), STATE, "another run", id="mix-state-in-create-folder"),
    pytest.param("pet-early", copy_from("other-seed-early", STATE), LOG, "another run's", id="other-seed-no-ckpt"),
    pytest.param("pet-early", copy_from("pet", STATE), LOG, "does not match", id="later-state-shorter-log"),
    # truncated, edited, garbage and non-UTF-8 logs
    pytest.param("pet", edit_log(lambda lines: lines[:3]), LOG, "does not match", id="log-cut-to-3-lines"),
    pytest.param("pet", edit_log(lambda lines: [*lines[:4], lines[4][:20]]), LOG, "does not match", id="log-cut-mid"),
    pytest.param("pet", edit_log(lambda lines: []), LOG, "does not match", id="log-emptied"),
    pytest.param("pet", remove_log, LOG, "does not match", id="log-removed"),
    pytest.param("pet", edit_log(_loss_edited), LOG, "does not match", id="log-loss-edited"),
    pytest.param("pet", edit_log(lambda lines: [lines[0], *lines[2:]]), LOG, "does not match", id="log-line-dropped"),
    pytest.param("pet", edit_log(lambda lines: [lines[1], lines[0], *lines[2:]]), LOG, "does not match", id="swapped"),
    pytest.param("pet", edit_log(lambda lines: [lines[0], b"garbage\n", *lines[2:]]), LOG, "does not", id="garbage"),
    pytest.param("pet", edit_log(lambda lines: [lines[0], b"\xff\xfe\n", *lines[2:]]), LOG, "does not", id="not-utf8"),
    pytest.param("pet", edit_log(lambda lines: [b"\r\n".join(lines)]), LOG, "does not match", id="log-crlf"),
    pytest.param("pet", copy_from("other-seed", LOG), LOG, "does not match", id="other-seed-log"),
    # the folder's own record of its run, damaged
    pytest.param("pet", damage_checkpoint, CHECKPOINT, "", id="checkpoint-damaged"),
]


def _files(run: Path) -> dict[str, bytes]:
    return {str(path.relative_to(run)): path.read_bytes() for path in sorted(run.rglob("*")) if path.is_file()}


@pytest.mark.parametrize(("source", "tamper", "named", "fragment"), REFUSED)
def test_a_tampered_run_is_refused_in_one_line_and_left_as_it_was(
    runs: dict[str, Path], tmp_path: Path, run_cli, source: str, tamper: Tamper, named: Path, fragment: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs[source], run)
    tamper(run, runs)
    before = _files(run)
    code, _, err = run_cli("create", "--resume", run)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert str(run / named) in err and fragment in err, err
    assert _files(run) == before and not (run / LOCK_NAME).exists()


def test_a_partial_line_left_past_the_saved_state_by_a_hard_kill_still_resumes(
    runs: dict[str, Path], tmp_path: Path, run_cli
) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs["pet"], run)
    with (run / LOG).open("ab") as log:
        log.write(b'{"step": 6, "templ')
    code, _, err = run_cli("create", "--resume", run)
    assert code == 0, err
    assert len((run / LOG).read_text(encoding="utf-8").splitlines()) == PET.steps


@pytest.mark.parametrize("command", ["mix", "evolve"])
def test_mix_and_evolve_resume_refuse_another_runs_state_the_same_way(
    runs: dict[str, Path], tmp_path: Path, run_cli, command: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs["mix"], run)
    copy_from("pet", STATE)(run, runs)
    before = _files(run)
    code, _, err = run_cli(command, "--resume", run)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "another run" in err and str(run / STATE) in err, err
    assert _files(run) == before
