"""Oracles look at the concept's images and name what it resembles (the paper's adaptive negatives).

Oracles live in plugins and register under the `conceptlab.oracles` entry-point group; each entry point is an
`OracleFactory`: it makes the oracle, and checks the inputs first, before any model loads. Heavy oracles load their
weights lazily, on the first question.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from PIL import Image

from conceptlab.engine.models.plugins import find, names

if TYPE_CHECKING:
    import torch
    from torch import nn

    from conceptlab.engine.models.loading import LoadedPrior

ORACLE_GROUP = "conceptlab.oracles"
STYLE_CONTENT = "a horse and a barn"
"""What the style-mode oracle image shows, painted in the concept's style (the question names it, as the official
`query_vlm` does, so that the answer is a style rather than the content)."""


@dataclass(frozen=True)
class Question:
    """What the oracle is asked about each image: the kind of `category` member, or the art style."""

    category: str | None
    style: bool = False
    wording: str | None = None
    """Another question about the category (an evaluation judge's), asked instead of "What kind of ...?"."""
    yes_no: bool = False
    """The wording asks for yes or no ("Is this a pet?"): an oracle that picks words answers "yes" or "no"."""
    official: bool = False
    """Asked as the official imagine code asks (`imagine --preset paper`): an oracle that words a prompt around the
    question (Qwen2.5-VL) uses the official one."""

    @property
    def text(self) -> str:
        if self.wording:
            return self.wording
        if self.style:
            return f"What art style was used in this photo of {STYLE_CONTENT}?"
        return f"What kind of {self.category or 'object'} is in this photo?"


@dataclass(frozen=True)
class OracleOptions:
    model: str | None = None
    """The oracle's own weights (a hub id or folder); None: the oracle's default."""
    vocab_file: Path | None = None
    revision: str | None = None
    """Hub revision of `model`."""


@runtime_checkable
class Oracle(Protocol):
    name: str

    def ask(self, images: list[Image.Image], question: Question, known: list[str]) -> list[str]:
        """One free-text answer per image; `known` are words already constrained (an oracle may skip them)."""
        ...


@runtime_checkable
class OracleWithWeights(Oracle, Protocol):
    """An oracle with weights of its own (BLIP-2), unlike one that reuses the backend's models (clip-zeroshot).

    Whether to offload counts its `expected_bytes()` before it loads; once loaded, its `modules()` are moved like
    the prior's and the decoder's, so with offloading they leave the device while another model works.
    """

    def modules(self) -> list[nn.Module]:
        """Its loaded modules (none before the first question)."""
        ...

    def expected_bytes(self) -> int:
        """What its weights will take on the device, known before they load."""
        ...


@runtime_checkable
class ScoringOracle(Oracle, Protocol):
    """An oracle that names a word by a score it can give for any word (clip-zeroshot's cosine)."""

    def scores(self, images: list[Image.Image], words: list[str]) -> torch.Tensor:
        """`[images, words]`: the score of each word for each image."""
        ...


def oracle_input_size(oracle: Oracle) -> int | None:
    """The side in pixels its image processor brings an image to (ViLT's shortest edge, BLIP-2's and CLIP's square),
    where the oracle says (`input_size()`); None: it does not say."""
    input_size = getattr(oracle, "input_size", None)
    return int(input_size()) if callable(input_size) else None


def fit_to_oracle(image: Image.Image, side: int | None) -> Image.Image:
    """`image` shrunk so that its shorter edge is `side`, as the oracle's processor would shrink it; never enlarged."""
    if side is None or min(image.size) <= side:
        return image
    scale = side / min(image.size)
    width, height = (max(side, round(edge * scale)) for edge in image.size)
    return image.resize((width, height), Image.Resampling.BICUBIC)


def oracle_names() -> list[str]:
    return names(ORACLE_GROUP)


@runtime_checkable
class OracleFactory(Protocol):
    """What an oracle entry point gives: a callable that makes the oracle (a class is its own factory)."""

    def __call__(self, loaded: LoadedPrior, options: OracleOptions) -> Oracle: ...

    def check_inputs(self, question: Question, options: OracleOptions) -> None:
        """Raise `UsageError` for inputs the oracle cannot use (a category with no vocabulary, an option it would
        ignore); return when every input will do. Called before any model loads."""
        ...


def oracle_factory(name: str) -> OracleFactory:
    """The factory registered under `name` (nothing is loaded yet)."""
    return find(ORACLE_GROUP, name)


def check_oracle_inputs(name: str, question: Question, options: OracleOptions) -> None:
    """Refuse an unknown oracle, or inputs it cannot use, before any model loads."""
    oracle_factory(name).check_inputs(question, options)


def oracle_uses_prior(name: str) -> bool:
    """Whether the oracle `name` answers with the Kandinsky prior's own CLIP (it declares `uses_prior`), which a
    Stable Diffusion pipeline has not."""
    return getattr(oracle_factory(name), "uses_prior", False)


def load_oracle(name: str, loaded: LoadedPrior, options: OracleOptions) -> Oracle:
    return oracle_factory(name)(loaded, options)
