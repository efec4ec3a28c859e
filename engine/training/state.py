"""The training loop's whole state, saved so an interrupted run resumes to the same bytes.

One safetensors file (never pickle): the learned vector, the optimizer's tensors and the random generator's
state as tensors; the step, the negatives (with the step each was added at), the log position and the sha256 of
the log lines it covers, the config and the model choice as JSON metadata; and a checksum of all of these, so an
edited or damaged state is refused instead of resuming into a different concept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from conceptlab.engine.errors import ConceptFileError
from conceptlab.engine.io.atomic import write_atomically
from conceptlab.engine.io.safetensors_header import decode_metadata, encode_metadata, encoded_metadata
from conceptlab.engine.training.config import CreateConfig

STATE_FORMAT = 2
"""2: the state carries a checksum and the log's sha256 (format 1 carried neither, so it cannot be trusted)."""
MAX_STATE_BYTES = 64 * 1024 * 1024
"""A state holds one vector and two optimizer moments: kilobytes. Anything this large is not one."""
START_AGAIN = "it cannot be resumed; start the run again with --force."


@dataclass
class TrainingState:
    """Where training stands after `step` completed steps; `step == 0` is a fresh start."""

    vector: torch.Tensor
    optimizer: dict[int, dict[str, torch.Tensor]]
    """The optimizer's per-parameter state (`optimizer.state_dict()["state"]`); its settings come from the config."""
    step: int
    generator: torch.Tensor
    """`torch.Generator.get_state()`: the next template choice and the prior's next noise."""
    negatives: list[dict[str, Any]]
    """`[{"word", "step"}]`: the given negatives (step 0) and any added during training."""
    log_lines: int
    """How many lines of `log.jsonl` belong to this state; a resume truncates the log to them."""
    log_sha256: str = ""
    """sha256 of those lines' bytes (set with `log_lines` by the run that writes the log)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """JSON the caller wants back on resume (the config and the model choice)."""


def _tensors(state: TrainingState) -> dict[str, torch.Tensor]:
    tensors = {"vector": state.vector.detach().to("cpu", torch.float32).contiguous(), "generator": state.generator}
    for index, values in state.optimizer.items():
        for key, value in values.items():
            tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
    return tensors


def state_checksum(tensors: dict[str, torch.Tensor], encoded: dict[str, str]) -> str:
    """sha256 over every tensor (name, dtype, shape, bytes) and every metadata value as stored (JSON text)."""
    digest = hashlib.sha256(json.dumps(encoded, sort_keys=True).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def state_bytes(state: TrainingState) -> bytes:
    metadata = {
        "conceptlab.state": STATE_FORMAT,
        "step": state.step,
        "negatives": state.negatives,
        "log_lines": state.log_lines,
        "log_sha256": state.log_sha256,
        "extra": state.extra,
    }
    tensors = _tensors(state)
    encoded = encode_metadata(metadata)
    return save_safetensors(tensors, metadata={**encoded, "checksum": json.dumps(state_checksum(tensors, encoded))})


def save_state(state: TrainingState, path: Path) -> None:
    write_atomically(path, state_bytes(state))


def _read_state_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not path.is_file():
        raise ConceptFileError(f"{path}: no saved training state; only an interrupted run can be resumed.")
    if path.stat().st_size > MAX_STATE_BYTES:
        raise ConceptFileError(f"{path} is too large to be a training state; {START_AGAIN}")
    data = path.read_bytes()
    try:
        tensors = load_safetensors(data)
        encoded = dict(encoded_metadata(data) or {})
        metadata = decode_metadata(encoded)
    except Exception:  # safetensors raises its own error type for every malformed file, the header `HeaderError`
        invalid = f"{path} is not a valid training state (damaged or not safetensors); {START_AGAIN}"
        raise ConceptFileError(invalid) from None
    if metadata.get("conceptlab.state") != STATE_FORMAT:
        raise ConceptFileError(
            f"{path}: training-state format {metadata.get('conceptlab.state')!r} is not this conceptlab's "
            f"({STATE_FORMAT}); {START_AGAIN}"
        )
    if encoded.pop("checksum", None) != json.dumps(state_checksum(tensors, encoded)):
        raise ConceptFileError(f"{path}: the training state fails its checksum (edited or damaged); {START_AGAIN}")
    return tensors, metadata


def load_state(path: Path) -> TrainingState:
    """Read a state written by `save_state`; every problem is one `ConceptFileError` line."""
    tensors, metadata = _read_state_file(path)
    try:
        state = TrainingState(
            vector=tensors["vector"],
            optimizer=_optimizer_state(tensors),
            step=int(metadata["step"]),
            generator=tensors["generator"],
            negatives=list(metadata["negatives"]),
            log_lines=int(metadata["log_lines"]),
            log_sha256=str(metadata["log_sha256"]),
            extra=dict(metadata["extra"]),
        )
    except (KeyError, TypeError, ValueError):
        raise ConceptFileError(f"{path}: the training state is incomplete; {START_AGAIN}") from None
    if min(state.step, state.log_lines) < 0 or not _tensors_fit(state) or not _negatives_are_records(state.negatives):
        raise ConceptFileError(f"{path}: the training state is damaged; {START_AGAIN}")
    return state


def _optimizer_state(tensors: dict[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    """`optimizer.<index>.<key>` tensors back into the optimizer's per-parameter state (ValueError if misnamed)."""
    optimizer: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            optimizer.setdefault(int(index), {})[key] = tensor
    return optimizer


def _tensors_fit(state: TrainingState) -> bool:
    """A finite 1-D vector, optimizer moments of its shape (or scalar step counts), a CPU generator's state."""
    moments = [tensor for values in state.optimizer.values() for tensor in values.values()]
    generator = torch.Generator().get_state()
    return (
        state.vector.dim() == 1
        and bool(torch.isfinite(state.vector).all())
        and all(tensor.dim() == 0 or tensor.shape == state.vector.shape for tensor in moments)
        and state.generator.dtype == generator.dtype
        and state.generator.shape == generator.shape
    )


def _negatives_are_records(negatives: list[Any]) -> bool:
    return all(
        isinstance(record, dict) and isinstance(record.get("word"), str) and type(record.get("step")) is int
        for record in negatives
    )


def config_as_json(config: CreateConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_json(data: dict[str, Any]) -> CreateConfig:
    """The inverse of `config_as_json` (JSON turns tuples into lists; every list field of the config is a tuple)."""
    values = {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}
    return CreateConfig(**values)
