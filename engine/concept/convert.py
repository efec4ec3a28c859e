"""Migration from the official ConceptLab code and diffusers textual inversion: `.bin` embeddings to concepts.

The official code saves `torch.save({"t2": {placeholder_token: tensor}}, "learned_embeds.bin")` (and
`<step>_step_embeds.bin` checkpoints); diffusers' textual-inversion script saves `{placeholder_token: tensor}`.
Both are pickles, so they are read with `torch.load(weights_only=True)`, which rebuilds tensors, dicts and
plain values only and refuses any other object instead of running its code.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from conceptlab.engine.concept.file import Concept, save_concept
from conceptlab.engine.errors import ConceptFileError, UsageError
from conceptlab.engine.io.atomic import refuse_existing
from conceptlab.engine.models.plugins import resolve_model
from conceptlab.engine.options import COMMAND_LINE_ONLY
from conceptlab.engine.prior.tokens import check_token_text
from conceptlab.engine.version import conceptlab_version, created_timestamp

MAX_BIN_BYTES = 16 * 1024 * 1024
"""An official `.bin` holds one row; anything larger is not one (and is not read)."""


def _load_weights_only(path: Path) -> Any:
    if not path.exists():
        raise ConceptFileError(f"{path}: no such file.")
    if not path.is_file():
        raise ConceptFileError(f"{path} is a folder; give the .bin file inside it.")
    if path.stat().st_size > MAX_BIN_BYTES:
        raise ConceptFileError(f"{path} is too large to be a learned embedding.")
    try:
        with warnings.catch_warnings():  # torch warns about what it refuses; the refusal below says it in one line
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "global" in str(error).lower():  # weights_only met a class or function: the file wants to run code
            raise ConceptFileError(
                f"{path} holds Python objects other than tensors; refusing to unpickle it (it could run code)."
            ) from None
        raise ConceptFileError(f"{path} is not a torch-saved embedding file (damaged or another format).") from None
    except Exception:  # random bytes make the unpickler fail in many ways (IndexError, KeyError, ...)
        raise ConceptFileError(f"{path} is not a torch-saved embedding file (damaged or another format).") from None


def _embeddings_by_token(path: Path, data: Any) -> dict[str, Any]:
    """`{"t2": {token: tensor}}` (official ConceptLab) or `{token: tensor}` (diffusers textual inversion)."""
    if isinstance(data, dict) and set(data) == {"t2"} and isinstance(data["t2"], dict):
        data = data["t2"]
    if not isinstance(data, dict) or not data or not all(isinstance(key, str) for key in data):
        raise ConceptFileError(
            f"{path} is not a learned-embedding file; expected {{'t2': {{token: tensor}}}} or {{token: tensor}}."
        )
    return data


def _pick(path: Path, embeddings: dict[str, Any], token: str | None) -> tuple[str, torch.Tensor]:
    if token is None:
        if len(embeddings) != 1:
            raise UsageError(
                f"{path} holds {len(embeddings)} tokens ({', '.join(embeddings)}); choose one with --token."
            )
        token = next(iter(embeddings))
    if token not in embeddings:
        raise UsageError(f"{path} has no token {token!r}; it holds {', '.join(embeddings)}.")
    check_token_text(token)
    tensor = embeddings[token]
    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
        raise ConceptFileError(f"{path}: the embedding of {token!r} is not a floating-point tensor.")
    if tensor.dim() not in (1, 2) or (tensor.dim() == 2 and tensor.shape[0] != 1) or tensor.numel() == 0:
        raise ConceptFileError(f"{path}: embedding of shape {list(tensor.shape)}; expected [dim] or [1, dim].")
    vector = tensor.detach().to(torch.float32).reshape(-1).clone()
    if not torch.isfinite(vector).all():
        raise ConceptFileError(f"{path}: the embedding holds NaN or infinite values.")
    return token, vector


def convert_embedding(path: Path | str, *, model: str, backend: str | None = None, token: str | None = None) -> Concept:
    """Read an official-code or diffusers `.bin` safely and return it as a concept trained against `model`.

    Nothing records which model a `.bin` was trained with, so the caller names it (`model`, `backend` as for
    `create`); a width that does not fit that model is caught when the concept is used.
    """
    path = Path(path)
    chosen, model_id = resolve_model(model, backend)
    found, vector = _pick(path, _embeddings_by_token(path, _load_weights_only(path)), token)
    metadata = {
        "kind": "create",
        "initializer": None,
        "category": None,
        "positives": [],
        "weights": [],
        "negatives": [],
        "backend": chosen.name,
        "model": model_id,
        "model_revision": None,
        "converted_from": path.name,
        "parents": [],
        "lineage": [],
        "created": created_timestamp(),
        "conceptlab_version": conceptlab_version(),
    }
    return Concept(found, vector, metadata)


@dataclass(frozen=True)
class ConvertRequest:
    """`conceptlab convert`: one field per option."""

    source: Path
    """The `.bin` file the official code or diffusers saved."""
    model: str
    """The model it was trained with (nothing in the file records it)."""
    out: Path = field(metadata=COMMAND_LINE_ONLY)
    """The concept `.safetensors` file to write."""
    token: str | None = None
    """None: the file's only token."""
    backend: str | None = None
    force: bool = field(default=False, metadata=COMMAND_LINE_ONLY)


def convert(request: ConvertRequest) -> Concept:
    """Convert `request.source` and write it to `request.out` (refused if it is there, unless `force`)."""
    out = request.out
    if out.suffix != ".safetensors":
        raise UsageError(f"--out {out} must end in .safetensors.")
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a .safetensors file name.")
    refuse_existing([out], request.force, "--out")
    concept = convert_embedding(request.source, model=request.model, backend=request.backend, token=request.token)
    save_concept(concept, out)
    return concept
