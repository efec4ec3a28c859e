"""Shared fixtures: the tiny world (built once, cached) loaded through the real `from_pretrained` path."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may download anything
os.environ.setdefault("CONCEPTLAB_CONFIG", "")  # no settings file of the machine applies (tests set their own)

import pytest
import torch
from shared_models import SharedTiny

from conceptlab.cli.app import main
from conceptlab.engine import Concept, save_concept
from conceptlab.engine.models.backend import DecoderStack, PriorStack
from conceptlab.engine.models.loading import LoadedPrior, ModelChoice, load_prior
from conceptlab.engine.models.plugins import load_backend


@pytest.fixture(scope="session")
def shared_tiny() -> SharedTiny:
    """The tiny backend, loaded once per session through the real `load_prior` path."""
    return SharedTiny(load_prior(ModelChoice(model="tiny", device="cpu", dtype="float32")))


@pytest.fixture
def tiny(shared_tiny: SharedTiny) -> Iterator[LoadedPrior]:
    """The tiny backend as a fresh load gives it; a test may add tokens, train or move its modules."""
    lent = shared_tiny.lend()
    yield lent
    shared_tiny.take_back(lent)


@pytest.fixture
def stack(tiny: LoadedPrior) -> PriorStack:
    return tiny.stack


@pytest.fixture(scope="session")
def tiny_decoder() -> DecoderStack:
    """The tiny decoder, loaded once: rendering never changes it."""
    return load_backend("tiny").load_decoder(None, torch.device("cpu"), torch.float32)


def _digests(folder: Path) -> dict[Path, str]:
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.rglob("*") if path.is_file()}


@pytest.fixture(scope="session")
def concept_family(tmp_path_factory) -> Iterator[dict[str, Path]]:
    """One family of concepts on the tiny backend, trained once per session for the evolve, lineage, verify,
    gallery and sample tests. Read it, never change it: copy a file before altering it, write elsewhere.

    a, b, c: `create` for pet against cat, dog and hamster (seeds 0, 1, 2), all `new-pet.safetensors` in their own
    folders; a is adaptive (the oracle adds negatives every 10 steps) and keeps its images (2 decoder steps).
    child: `evolve` of a and b weighted 3:1 for 120 steps (enough to move toward its parents' images), with images.
    grandchild: `evolve` of child and c. metrics: `evaluate child -n 2 --json`, as written. At the end of the session
    every file of the family must be as it was made.
    """
    root = tmp_path_factory.mktemp("family")
    tiny = ("--category", "pet", "--steps", "20", "--every", "10", "--model", "tiny", "--device", "cpu")
    a_args = ("--neg", "cat", "--seed", "0", "--adaptive", "--ask-every", "10", "--image-steps", "2")
    assert main(["create", *tiny, *a_args, "--out", str(root / "a")]) == 0
    for name, negative, seed in (("b", "dog", "1"), ("c", "hamster", "2")):
        assert main(["create", *tiny, "--neg", negative, "--seed", seed, "--no-images", "--out", str(root / name)]) == 0
    a, b, c = (root / name / "new-pet.safetensors" for name in "abc")
    evolve = ["evolve", "--images-per-parent", "3", "--device", "cpu"]
    child_args = ("--steps", "120", "--every", "120", "--weights", "3,1", "--out", str(root / "child"))
    assert main([*evolve, str(a), str(b), *child_args]) == 0
    child = next((root / "child").glob("*.safetensors"))
    grandchild_args = ("--steps", "20", "--every", "20", "--no-images", "--out", str(root / "grandchild"))
    assert main([*evolve, str(child), str(c), *grandchild_args]) == 0
    grandchild = next((root / "grandchild").glob("*.safetensors"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["eval", str(child), "-n", "2", "--device", "cpu", "--json"]) == 0
    (root / "metrics.json").write_text(printed.getvalue())
    made = _digests(root)
    yield {"a": a, "b": b, "c": c, "child": child, "grandchild": grandchild, "metrics": root / "metrics.json"}
    assert _digests(root) == made, "a test changed the shared concept family"


@pytest.fixture
def run_cli(capsys):
    """Run `conceptlab ARGS...` in-process; return (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def route_concepts(tmp_path_factory, shared_tiny) -> dict[str, Path]:
    """For the `--via` route tests: two tiny concepts, and two that only claim Kandinsky 2.1 and 2.2 (no weights are
    ever loaded for those)."""
    folder = tmp_path_factory.mktemp("concepts")
    info = shared_tiny.info
    recorded = {"model": info.model, "text_encoder_fingerprint": info.text_encoder_fingerprint, "category": "pet"}
    paths = {}
    for name, seed in (("a", 1), ("b", 2)):
        vector = 0.3 * torch.randn(info.embedding_dim, generator=torch.Generator().manual_seed(seed))
        paths[name] = folder / f"{name}.safetensors"
        save_concept(Concept(f"<{name}>", vector, {**recorded, "backend": "tiny"}), paths[name])
    for backend, width in (("kandinsky-2.1", 768), ("kandinsky-2.2", 1280)):
        paths[backend] = folder / f"{backend}.safetensors"
        save_concept(Concept("<k>", torch.zeros(width), {"backend": backend, "category": "pet"}), paths[backend])
    return paths
