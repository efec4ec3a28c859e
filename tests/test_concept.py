"""The concept file: round trip, interoperability with diffusers, and refusal of anything malformed."""

import json
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch
from diffusers import DiffusionPipeline
from diffusers.loaders import TextualInversionLoaderMixin
from safetensors.torch import save_file

from conceptlab.engine.concept.file import Concept, check_concept_fits, load_concept, save_concept, tensor_sha256
from conceptlab.engine.errors import ConceptFileError
from conceptlab.engine.models.backend import ModelInfo


def _concept(dim=64, token="<new-pet>", **metadata):
    vector = torch.randn(dim, generator=torch.Generator().manual_seed(0))
    return Concept(token, vector, {"backend": "tiny", "model": "tiny", "kind": "create", **metadata})


def test_round_trip_keeps_vector_and_metadata(tmp_path):
    concept = _concept(negatives=[{"word": "cat", "step": 0}], weights=[0.6, 0.4])
    path = tmp_path / "c.safetensors"
    save_concept(concept, path)
    loaded = load_concept(path)
    assert torch.equal(loaded.vector, concept.vector)
    assert loaded.metadata["negatives"] == [{"word": "cat", "step": 0}]
    assert loaded.metadata["weights"] == [0.6, 0.4]
    assert loaded.metadata["sha256"] == tensor_sha256(concept.vector) == loaded.sha256
    assert loaded.metadata["embedding_dim"] == 64


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_a_saved_concept_is_as_readable_as_the_umask_allows(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        save_concept(_concept(), tmp_path / "c.safetensors")
    finally:
        os.umask(previous)
    assert (tmp_path / "c.safetensors").stat().st_mode & 0o777 == mode


class _TextOnlyPipeline(DiffusionPipeline, TextualInversionLoaderMixin):
    def __init__(self, tokenizer, text_encoder):
        super().__init__()
        self.register_modules(tokenizer=tokenizer, text_encoder=text_encoder)


def test_loads_with_diffusers_load_textual_inversion(stack, tmp_path):
    concept = _concept()
    path = tmp_path / "new-pet.safetensors"
    save_concept(concept, path)
    pipeline = _TextOnlyPipeline(stack.tokenizer, stack.text_encoder)
    pipeline.load_textual_inversion(str(path))
    token_id = stack.tokenizer.convert_tokens_to_ids("<new-pet>")
    row = stack.text_encoder.get_input_embeddings().weight[token_id]
    assert torch.equal(row.detach(), concept.vector)


def test_refuses_pickled_concept(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ConceptFileError):
        load_concept(path)
    torch.save({"<t>": Payload()}, path)  # the zip layout of torch.save, renamed
    with pytest.raises(ConceptFileError):
        load_concept(path)
    assert not marker.exists()
    pickle.loads(pickle.dumps(Payload()))  # the payload is live: unpickling it does run the command
    assert marker.exists()


def _write_raw(path: Path, tensors: dict, metadata: dict | None) -> Path:
    save_file(tensors, str(path), metadata=metadata)
    return path


def _valid_header(vector: torch.Tensor, token="<t>", **overrides) -> dict:
    header = {
        "conceptlab.format": "1",
        "token": json.dumps(token),
        "embedding_dim": str(vector.numel()),
        "sha256": json.dumps(tensor_sha256(vector)),
    }
    header.update(overrides)
    return header


BAD_FILES = {
    "random bytes": lambda p: p.write_bytes(os.urandom(300)) and p,
    "too short": lambda p: p.write_bytes(b"\x01\x02") and p,
    "header past end": lambda p: p.write_bytes(struct.pack("<Q", 10_000) + b"{}") and p,
    "header not json": lambda p: p.write_bytes(struct.pack("<Q", 4) + b"abcd") and p,
    "no metadata": lambda p: _write_raw(p, {"<t>": torch.zeros(1, 64)}, None),
    "two tensors": lambda p: _write_raw(
        p, {"<t>": torch.zeros(1, 64), "<u>": torch.zeros(1, 64)}, _valid_header(torch.zeros(64))
    ),
    "wrong shape": lambda p: _write_raw(p, {"<t>": torch.zeros(2, 32)}, _valid_header(torch.zeros(64))),
    "wrong dtype": lambda p: _write_raw(
        p, {"<t>": torch.zeros(1, 64, dtype=torch.float16)}, _valid_header(torch.zeros(64))
    ),
    "key is not the token": lambda p: _write_raw(p, {"<u>": torch.zeros(1, 64)}, _valid_header(torch.zeros(64))),
    "future format": lambda p: _write_raw(
        p, {"<t>": torch.zeros(1, 64)}, _valid_header(torch.zeros(64), **{"conceptlab.format": "99"})
    ),
    "metadata not json": lambda p: _write_raw(
        p, {"<t>": torch.zeros(1, 64)}, _valid_header(torch.zeros(64), token="<t>", kind="not json {")
    ),
    "altered tensor": lambda p: _write_raw(p, {"<t>": torch.ones(1, 64)}, _valid_header(torch.zeros(64))),
    "nan values": lambda p: _write_raw(
        p, {"<t>": torch.full((1, 64), float("nan"))}, _valid_header(torch.full((64,), float("nan")))
    ),
    "empty file": lambda p: p.write_bytes(b"") or p,
    "truncated": lambda p: _truncated(p),
    "100 MB header": lambda p: _sparse(p, 100 * 1024 * 1024),
    "header claims 100 MB": lambda p: p.write_bytes(struct.pack("<Q", 100 * 1024 * 1024) + b"{}" * 64) and p,
    "no tensors": lambda p: _write_raw(p, {}, _valid_header(torch.zeros(64))),
    "float64": lambda p: _write_raw(
        p, {"<t>": torch.zeros(1, 64, dtype=torch.float64)}, _valid_header(torch.zeros(64))
    ),
    "int tensor": lambda p: _write_raw(
        p, {"<t>": torch.zeros(1, 64, dtype=torch.int32)}, _valid_header(torch.zeros(64))
    ),
    "three dimensions": lambda p: _write_raw(p, {"<t>": torch.zeros(1, 1, 64)}, _valid_header(torch.zeros(64))),
    "width disagrees": lambda p: _write_raw(
        p, {"<t>": torch.zeros(1, 64)}, _valid_header(torch.zeros(64), embedding_dim="32")
    ),
    "format not a number": lambda p: _write_raw(
        p, {"<t>": torch.zeros(1, 64)}, _valid_header(torch.zeros(64), **{"conceptlab.format": '"one"'})
    ),
    "torch.save zip renamed": lambda p: torch.save({"<t>": torch.zeros(1, 64)}, p) or p,
    **{
        f"malformed {key}: {value}": lambda p, key=key, value=value: _write_raw(
            p, {"<t>": torch.zeros(1, 64)}, _valid_header(torch.zeros(64), **{key: value})
        )
        for key, value in (
            ("negatives", '[{"word": "x"}]'),
            ("negatives", '["cat"]'),
            ("negatives", '[{"word": 3, "step": 0}]'),
            ("parents", '[{"token": "x"}]'),
            ("parents", '[{"token": "x", "sha256": "ab", "weight": "heavy"}]'),
            ("final_similarities", '{"positive": {"pet": "high"}}'),
            ("positives", '"pet"'),
            ("weights", "[true]"),
            ("lineage", '["x"]'),
            ("category", "3"),
        )
    },
}


def _truncated(path: Path) -> Path:
    _write_raw(path, {"<t>": torch.zeros(1, 64)}, _valid_header(torch.zeros(64)))
    path.write_bytes(path.read_bytes()[:-40])
    return path


def _sparse(path: Path, size: int) -> Path:
    """A file of `size` bytes whose header length says it fills the file (sparse: no disk is used)."""
    with path.open("wb") as file:
        file.write(struct.pack("<Q", size - 8))
        file.truncate(size)
    return path


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_refuses_malformed_file_with_one_line(tmp_path, case):
    path = tmp_path / "bad.safetensors"
    BAD_FILES[case](path)
    with pytest.raises(ConceptFileError) as raised:
        load_concept(path)
    assert "\n" not in str(raised.value) and str(path) in str(raised.value)


def test_a_valid_raw_file_passes_the_same_checks(tmp_path):
    """The malformed cases above differ from this one in one thing each, so each refusal is for that thing."""
    path = _write_raw(tmp_path / "ok.safetensors", {"<t>": torch.zeros(1, 64)}, _valid_header(torch.zeros(64)))
    assert load_concept(path).token == "<t>"


def test_refuses_concept_for_another_model():
    concept = _concept(dim=64, text_encoder_fingerprint="abc")
    check_concept_fits(concept, ModelInfo("tiny", "tiny", None, 64, "abc"))
    with pytest.raises(ConceptFileError, match="width 768"):
        check_concept_fits(concept, ModelInfo("kandinsky-2.1", "k", None, 768, "abc"))
    with pytest.raises(ConceptFileError, match="another text encoder"):
        check_concept_fits(concept, ModelInfo("tiny", "tiny", None, 64, "def"))


def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    save_concept(_concept(), path)
    before = path.read_bytes()

    def broken_replace(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        save_concept(_concept(dim=64, kind="mix"), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]
