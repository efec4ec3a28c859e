"""The training loop's whole state, saved so an interrupted run resumes to the same bytes.

One safetensors file (never pickle): the learned vector, the optimizer's tensors and the random generator's
state as tensors; the step, the negatives (with the step each was added at), the log position, the config and
the model choice as JSON metadata.
"""

from __future__ import annotations

import dataclasses
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

STATE_FORMAT = 1
MAX_STATE_BYTES = 64 * 1024 * 1024
"""A state holds one vector and two optimizer moments: kilobytes. Anything this large is not one."""


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
    extra: dict[str, Any] = field(default_factory=dict)
    """JSON the caller wants back on resume (the config and the model choice)."""


def _tensors(state: TrainingState) -> dict[str, torch.Tensor]:
    tensors = {"vector": state.vector.detach().to("cpu", torch.float32).contiguous(), "generator": state.generator}
    for index, values in state.optimizer.items():
        for key, value in values.items():
            tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
    return tensors


def state_bytes(state: TrainingState) -> bytes:
    metadata = {
        "conceptlab.state": STATE_FORMAT,
        "step": state.step,
        "negatives": state.negatives,
        "log_lines": state.log_lines,
        "extra": state.extra,
    }
    return save_safetensors(_tensors(state), metadata=encode_metadata(metadata))


def save_state(state: TrainingState, path: Path) -> None:
    write_atomically(path, state_bytes(state))


def _read_state_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not path.is_file():
        raise ConceptFileError(f"{path}: no saved training state; only an interrupted run can be resumed.")
    if path.stat().st_size > MAX_STATE_BYTES:
        raise ConceptFileError(f"{path} is too large to be a training state.")
    data = path.read_bytes()
    try:
        tensors = load_safetensors(data)
        metadata = decode_metadata(encoded_metadata(data) or {})
    except Exception:  # safetensors raises its own error type for every malformed file, the header `HeaderError`
        raise ConceptFileError(f"{path} is not a valid training state (damaged or not safetensors).") from None
    if metadata.get("conceptlab.state") != STATE_FORMAT:
        raise ConceptFileError(f"{path}: unknown training-state format {metadata.get('conceptlab.state')!r}.")
    return tensors, metadata


def load_state(path: Path) -> TrainingState:
    """Read a state written by `save_state`; every problem is one `ConceptFileError` line."""
    tensors, metadata = _read_state_file(path)
    optimizer: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            optimizer.setdefault(int(index), {})[key] = tensor
    try:
        state = TrainingState(
            vector=tensors["vector"],
            optimizer=optimizer,
            step=int(metadata["step"]),
            generator=tensors["generator"],
            negatives=list(metadata["negatives"]),
            log_lines=int(metadata["log_lines"]),
            extra=dict(metadata["extra"]),
        )
    except (KeyError, TypeError, ValueError):
        raise ConceptFileError(f"{path}: the training state is incomplete; it cannot be resumed.") from None
    if state.generator.dtype != torch.uint8 or not torch.isfinite(state.vector).all():
        raise ConceptFileError(f"{path}: the training state is damaged; it cannot be resumed.")
    return state


def config_as_json(config: CreateConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_json(data: dict[str, Any]) -> CreateConfig:
    """The inverse of `config_as_json` (JSON turns tuples into lists; every list field of the config is a tuple)."""
    values = {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}
    return CreateConfig(**values)
