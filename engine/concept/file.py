"""The concept file: one safetensors tensor keyed by the placeholder token, plus JSON metadata.

The tensor layout is the one diffusers' `load_textual_inversion` reads, so any pipeline can use a concept.
Loading never runs code: the file is parsed as safetensors only, after its header has been sanity-checked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors

from conceptlab.engine.errors import ConceptFileError
from conceptlab.engine.io.atomic import write_atomically
from conceptlab.engine.io.safetensors_header import (
    HeaderError,
    decode_metadata,
    encode_metadata,
    encoded_metadata,
    header_bytes,
)
from conceptlab.engine.models.backend import ModelInfo

FORMAT_VERSION = 1
MAX_FILE_BYTES = 16 * 1024 * 1024
"""A concept is a few kilobytes; anything this large is not one (and is not read into memory)."""
MAX_LINEAGE_DEPTH = 100
"""Generations a lineage may record: the commands that draw a tree recurse once per generation, and no real
family is this deep (`breed` adds one generation per `--generations`)."""


def tensor_sha256(vector: torch.Tensor) -> str:
    """The concept's identity: sha256 of its float32 values as little-endian bytes."""
    values = vector.detach().to("cpu", torch.float32).contiguous().reshape(-1)
    return hashlib.sha256(values.numpy().astype("<f4").tobytes()).hexdigest()


@dataclass(frozen=True)
class Concept:
    """A learned token: its name, its embedding `[dim]` (float32, CPU) and what is known about it."""

    token: str
    vector: torch.Tensor
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return tensor_sha256(self.vector)

    @property
    def embedding_dim(self) -> int:
        return self.vector.numel()


def concept_bytes(concept: Concept) -> bytes:
    """Serialize: the tensor as `[1, dim]` float32 and every metadata value as JSON text."""
    metadata = {
        **concept.metadata,
        "conceptlab.format": FORMAT_VERSION,
        "token": concept.token,
        "embedding_dim": concept.embedding_dim,
        "sha256": concept.sha256,
    }
    tensor = concept.vector.detach().to("cpu", torch.float32).reshape(1, -1).contiguous()
    return canonical_safetensors(concept.token, tensor, encode_metadata(metadata))


def canonical_safetensors(name: str, tensor: torch.Tensor, metadata: dict[str, str]) -> bytes:
    """One float32 tensor in the safetensors format with its header's keys in sorted order, so the same concept is
    the same bytes wherever it is written (a batch job here or on a Ray worker)."""
    data = tensor.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes()
    entry = {"dtype": "F32", "shape": list(tensor.shape), "data_offsets": [0, len(data)]}
    return header_bytes({"__metadata__": metadata, name: entry}) + data


MAX_CONCEPT_NORM = 1000.0
"""The longest embedding a concept may hold: CLIP's word embeddings are 0.3 to 1.5 long and training moves a token
by about the learning rate per step; 1000 times a word's length is no word, and overflows the text encoder."""


def save_concept(concept: Concept, path: Path) -> None:
    """Write the concept file; a vector with NaN or infinite values (a too-large learning rate) is refused."""
    if not torch.isfinite(concept.vector).all():
        raise ConceptFileError(f"{path}: the learned embedding holds NaN or infinite values; nothing was written.")
    write_atomically(path, concept_bytes(concept))


def _read_checked_bytes(path: Path) -> bytes:
    if not path.exists():
        raise ConceptFileError(f"{path}: no such concept file.")
    if path.is_dir():
        raise ConceptFileError(f"{path} is a folder; give the .safetensors concept file inside it.")
    if not path.is_file():
        raise ConceptFileError(f"{path} is not a regular file (a FIFO or a device?); give a concept file.")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ConceptFileError(f"{path} is {size} bytes, too large to be a concept file.")
    return path.read_bytes()


def _parse_metadata(path: Path, data: bytes) -> dict[str, Any]:
    try:
        encoded = encoded_metadata(data)
    except HeaderError as error:
        raise ConceptFileError(f"{path} is not a valid safetensors file ({error}).") from None
    if encoded is None or "conceptlab.format" not in encoded:
        raise ConceptFileError(f"{path} has no conceptlab metadata; it was not written by conceptlab.")
    try:
        metadata = decode_metadata(encoded)
    except HeaderError as error:
        raise ConceptFileError(f"{path}: {error}; the file is damaged.") from None
    version = metadata["conceptlab.format"]
    if not isinstance(version, int) or version < 1:
        raise ConceptFileError(f"{path}: unknown concept format {version!r}.")
    if version > FORMAT_VERSION:
        raise ConceptFileError(
            f"{path} uses concept format {version}, newer than this conceptlab reads ({FORMAT_VERSION}); upgrade."
        )
    return metadata


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _records_have(value: Any, fields: dict[str, Any]) -> bool:
    """`value` is a list of objects whose `fields` pass their checks (a field of check None may be absent)."""
    return isinstance(value, list) and all(
        isinstance(item, dict)
        and all(check(item[key]) if key in item else optional for key, (check, optional) in fields.items())
        for item in value
    )


def _is_similarity_table(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(group, dict) and all(_is_number(sim) for sim in group.values()) for group in value.values()
    )


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_text_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


METADATA_SHAPES: dict[str, Any] = {
    "token": _is_text,
    "category": lambda value: value is None or isinstance(value, str),
    "positives": _is_text_list,
    "weights": lambda value: isinstance(value, list) and all(_is_number(item) for item in value),
    "negatives": lambda value: _records_have(
        value, {"word": (_is_text, False), "step": (_is_number, False), "source": (_is_text, True)}
    ),
    "parents": lambda value: _records_have(
        value, {"token": (_is_text, False), "sha256": (_is_text, False), "weight": (_is_number, False)}
    ),
    "lineage": lambda value: isinstance(value, list) and all(isinstance(item, dict) for item in value),
    "final_similarities": _is_similarity_table,
}
"""The shape of each metadata value the commands read: a file that breaks one is refused when loaded, so no
command later fails on it."""


def _check_metadata_shapes(path: Path, metadata: dict[str, Any]) -> None:
    for key, is_valid in METADATA_SHAPES.items():
        if key in metadata and not is_valid(metadata[key]):
            raise ConceptFileError(f"{path}: its metadata {key!r} is malformed; the file is damaged.")
    problem = lineage_problem(metadata)
    if problem:
        raise ConceptFileError(f"{path}: {problem}; the file is damaged.")


def _is_optional_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def lineage_problem(metadata: dict[str, Any]) -> str | None:
    """What is wrong with the family tree `metadata` records, at any depth, or None.

    Walked with a stack, not recursion: a forged file may nest records far deeper than any real family.
    """
    pending = [(metadata, 0)]
    while pending:
        record, depth = pending.pop()
        if depth > MAX_LINEAGE_DEPTH:
            return f"its lineage is nested deeper than {MAX_LINEAGE_DEPTH} generations"
        parents, records = record.get("parents") or [], record.get("lineage") or []
        if not METADATA_SHAPES["parents"](parents) or not METADATA_SHAPES["lineage"](records):
            return f"a parent record at generation {depth} of its lineage is malformed"
        if len(parents) != len(records):
            return f"generation {depth} of its lineage lists {len(parents)} parents but {len(records)} records"
        if not all(_is_optional_text(record.get(key)) for key in ("token", "kind", "category", "created")):
            return f"a record at generation {depth} of its lineage has a name that is not text"
        pending.extend((parent, depth + 1) for parent in records)
    return None


def lineage_depth(metadata: dict[str, Any]) -> int:
    """How many generations of ancestors a checked concept's metadata records (0: no parents)."""
    deepest, pending = 0, [(metadata, 0)]
    while pending:
        record, depth = pending.pop()
        deepest = max(deepest, depth)
        pending.extend((parent, depth + 1) for parent in record.get("lineage") or [])
    return deepest


def _checked_vector(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> torch.Tensor:
    if len(tensors) != 1:
        raise ConceptFileError(f"{path} holds {len(tensors)} tensors; a concept file holds exactly one.")
    ((token, tensor),) = tensors.items()
    if token != metadata.get("token"):
        raise ConceptFileError(f"{path}: tensor {token!r} does not match its token {metadata.get('token')!r}.")
    if tensor.dtype != torch.float32:
        raise ConceptFileError(f"{path}: the embedding is {tensor.dtype}, a concept stores float32.")
    if tensor.dim() not in (1, 2) or (tensor.dim() == 2 and tensor.shape[0] != 1) or tensor.numel() == 0:
        raise ConceptFileError(f"{path}: embedding of shape {list(tensor.shape)}; expected [dim] or [1, dim].")
    vector = tensor.reshape(-1)
    if not torch.isfinite(vector).all():
        raise ConceptFileError(f"{path}: the embedding holds NaN or infinite values.")
    length = float(vector.double().norm())
    if length > MAX_CONCEPT_NORM:
        raise ConceptFileError(
            f"{path}: the embedding is {length:.3g} long, beyond the bound {MAX_CONCEPT_NORM:g} (a word's is about 1; "
            "the text encoder would give NaN)."
        )
    if metadata.get("embedding_dim") != vector.numel():
        raise ConceptFileError(
            f"{path}: metadata says width {metadata.get('embedding_dim')}, the tensor has {vector.numel()}."
        )
    if metadata.get("sha256") != tensor_sha256(vector):
        raise ConceptFileError(f"{path}: the embedding does not match its recorded sha256; the file was altered.")
    return vector


def load_concept(path: Path | str) -> Concept:
    """Read and validate a concept file; every problem is a `ConceptFileError` with one line."""
    path = Path(path)
    data = _read_checked_bytes(path)
    metadata = _parse_metadata(path, data)
    try:
        tensors = load_safetensors(data)
    except Exception as error:  # safetensors raises its own error type for every malformed file
        raise ConceptFileError(f"{path} is not a valid safetensors file ({error}).") from None
    vector = _checked_vector(path, tensors, metadata)
    _check_metadata_shapes(path, metadata)
    return Concept(metadata["token"], vector.clone(), metadata)


def check_concept_fits(concept: Concept, info: ModelInfo, source: str = "concept") -> None:
    """Refuse a concept trained against another backend, width or text encoder than `info`."""
    meta = concept.metadata
    trained = f"{meta.get('backend')} ({meta.get('model')}, width {concept.embedding_dim})"
    loaded = f"{info.backend} ({info.model}, width {info.embedding_dim})"
    if meta.get("backend") != info.backend or concept.embedding_dim != info.embedding_dim:
        raise ConceptFileError(f"{source} was trained for {trained} but the model is {loaded}.")
    if meta.get("text_encoder_fingerprint") not in (None, info.text_encoder_fingerprint):
        raise ConceptFileError(
            f"{source} was trained against another text encoder than {loaded} (fingerprints differ)."
        )


def read_metadata(path: Path | str) -> dict[str, Any]:
    """A concept file's metadata without checking its tensor (to name a file whose embedding was altered)."""
    path = Path(path)
    return _parse_metadata(path, _read_checked_bytes(path))
