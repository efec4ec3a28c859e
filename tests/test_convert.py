"""`conceptlab convert`: official-code and diffusers `.bin` embeddings become concept files, safely."""

import os

import pytest
import torch

from conceptlab.engine.concept.convert import convert_embedding
from conceptlab.engine.concept.file import load_concept
from conceptlab.engine.errors import ConceptFileError, UsageError


def _row(dim=64, dtype=torch.float32):
    return torch.randn(dim, generator=torch.Generator().manual_seed(3)).to(dtype)


def test_converts_the_official_t2_layout(run_cli, tmp_path):
    torch.save({"t2": {"<new-pet>": _row()}}, tmp_path / "learned_embeds.bin")
    out = tmp_path / "new-pet.safetensors"
    code, stdout, err = run_cli("convert", tmp_path / "learned_embeds.bin", "--model", "tiny", "--out", out)
    assert code == 0, err and "<new-pet>" in stdout
    concept = load_concept(out)
    assert concept.token == "<new-pet>" and torch.equal(concept.vector, _row())
    meta = concept.metadata
    assert meta["backend"] == "tiny" and meta["converted_from"] == "learned_embeds.bin" and meta["embedding_dim"] == 64


def test_converts_the_diffusers_layout_in_half_precision(tmp_path):
    torch.save({"<cat-toy>": _row(dtype=torch.float16).reshape(1, -1)}, tmp_path / "learned_embeds.bin")
    concept = convert_embedding(tmp_path / "learned_embeds.bin", model="tiny")
    assert concept.vector.dtype == torch.float32 and torch.equal(concept.vector, _row(dtype=torch.float16).float())


def test_picks_one_token_of_several(tmp_path):
    torch.save({"t2": {"<a>": _row(), "<b>": -_row()}}, tmp_path / "two.bin")
    with pytest.raises(UsageError, match="--token"):
        convert_embedding(tmp_path / "two.bin", model="tiny")
    assert torch.equal(convert_embedding(tmp_path / "two.bin", model="tiny", token="<b>").vector, -_row())


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_bin_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"t2": {"<new-pet>": _Payload(marker)}}, tmp_path / "evil.bin")
    with pytest.raises(ConceptFileError, match="refusing to unpickle"):
        convert_embedding(tmp_path / "evil.bin", model="tiny")
    assert not marker.exists()
    torch.load(tmp_path / "evil.bin", weights_only=False)  # the payload is live: full unpickling runs it
    assert marker.exists()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ({"t2": {"<t>": torch.zeros(2, 64)}}, "shape"),
        ({"t2": {"<t>": torch.zeros(64, dtype=torch.int64)}}, "floating-point"),
        ({"t2": {"<t>": torch.full((64,), float("inf"))}}, "NaN or infinite"),
        ({"t2": {"<t>": "not a tensor"}}, "floating-point"),
        ({}, "not a learned-embedding"),
        ({1: torch.zeros(64)}, "not a learned-embedding"),
    ],
)
def test_refuses_what_is_not_one_embedding(tmp_path, content, fragment):
    torch.save(content, tmp_path / "odd.bin")
    with pytest.raises(ConceptFileError, match=fragment) as refused:
        convert_embedding(tmp_path / "odd.bin", model="tiny")
    assert "\n" not in str(refused.value)
