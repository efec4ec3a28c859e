"""`conceptlab imagine`: what is asked (one field per option) and what comes back, checked before weights load."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from conceptlab.engine.errors import UsageError
from conceptlab.engine.imagine.models import default_imagine_model
from conceptlab.engine.imagine.official import PAPER, PAPER_ASK_UNTIL, PRESETS
from conceptlab.engine.options import COMMAND_LINE_ONLY, check_bounds, check_seeds

DEFAULT_PROMPT = "a photo of a new type of {}"
DEFAULT_QUESTION = "What kind of {} is this?"
DEFAULT_ASK_UNTIL = 0.5
TINY_PREVIEW = "tiny"
"""`--preview tiny`: x̂0 decoded by a tiny autoencoder (a preview mode, not the tiny model)."""
OFFICIAL_PREVIEW = "official"
"""`--preview official`: x̂0 = latents − guided prediction (no sigma), decoded by the model's own VAE at the image's
full size and handed whole to the oracle's processor, as the official code does (flow matching only)."""
FULL_PREVIEW = "full"
PREVIEWS = (TINY_PREVIEW, FULL_PREVIEW, OFFICIAL_PREVIEW)


@dataclass(frozen=True)
class ImagineRequest:
    """One image per seed (`seed`, `seed + 1`, ...), each with its own negative list grown by the oracle."""

    category: str
    n: int = 4
    seed: int = 0
    prompt: str = DEFAULT_PROMPT
    model: str | None = None
    """None: the model the installed plugins declare the default for imagine (Kandinsky 2.2), filled in on creation."""
    backend: str | None = None
    oracle: str | None = None
    """None: the model's default (vilt; the tiny Kandinsky backend: clip-zeroshot)."""
    oracle_model: str | None = None
    oracle_revision: str | None = None
    """Hub revision of the oracle's weights."""
    question: tuple[str, ...] = (DEFAULT_QUESTION,)
    """What the oracle is asked at each step, each question in turn; `{}` (optional) is the category."""
    top_k: int = 1
    """Answers taken per question: its k best (an oracle that ranks answers: ViLT)."""
    main_object: str | None = None
    """Appended to each answer before it joins the negatives ("cat" -> "cat pet"), as the official `--main_object`."""
    clear_at_stop: bool = False
    """After the window, the oracle's negatives stop acting (the preset: every negative, as the official code)."""
    preset: str | None = None
    """"paper": the official code's settings where they differ from ours (`official.py`, docs/imagine.md)."""
    ask_from: float = 0.0
    ask_until: float | None = None
    """None: 0.5 (the first half); with --preset paper 1 (every step, as the official code)."""
    ask_every: int = 1
    neg: tuple[str, ...] = ()
    max_negatives: int | None = None
    steps: int | None = None
    """Denoising steps (None: the model's default, e.g. 28 for SD3.5 as the paper)."""
    guidance: float | None = None
    size: int | None = None
    preview: str | None = None
    """How x̂0 is decoded for the oracle: "tiny" (a tiny autoencoder where the family has one; the default), "full"
    or "official" (the preset's)."""
    seeds: tuple[int, ...] = ()
    """Only these seeds (instead of `seed`..`seed + n - 1`)."""
    device: str = "auto"
    dtype: str = "auto"
    out: Path | None = field(default=None, metadata=COMMAND_LINE_ONLY)
    """None: `runs/imagine-<category>`."""
    force: bool = field(default=False, metadata=COMMAND_LINE_ONLY)

    def __post_init__(self) -> None:
        if self.model is None:
            object.__setattr__(self, "model", default_imagine_model())

    @property
    def image_seeds(self) -> tuple[int, ...]:
        return self.seeds or tuple(range(self.seed, self.seed + self.n))

    @property
    def out_folder(self) -> Path:
        return self.out or Path("runs") / f"imagine-{self.category.replace(' ', '-')}"

    def filled_prompt(self) -> str:
        return self.prompt.replace("{}", self.category)

    @property
    def official(self) -> bool:
        """--preset paper: the official code's asking, cleaning and negatives."""
        return self.preset == PAPER

    @property
    def window_end(self) -> float:
        if self.ask_until is not None:
            return self.ask_until
        return PAPER_ASK_UNTIL if self.official else DEFAULT_ASK_UNTIL

    @property
    def preview_mode(self) -> str:
        if self.preview is not None:
            return self.preview
        return OFFICIAL_PREVIEW if self.official else TINY_PREVIEW

    def filled_questions(self) -> tuple[str, ...]:
        return tuple(question.replace("{}", self.category) for question in self.question)

    def check(self) -> None:
        """Refuse in one line what no model could run; called before any weights load."""
        check_bounds(self)
        if not self.category.strip():
            raise UsageError("--category is empty; name what to imagine a new member of, e.g. --category pet.")
        if self.n < 1:
            raise UsageError(f"-n {self.n}: give a positive number of images.")
        if self.seed < 0 or any(seed < 0 for seed in self.seeds):
            raise UsageError("--seed must be a non-negative integer.")
        check_seeds("--seeds" if self.seeds else "the last seed (--seed + -n - 1)", self.image_seeds)
        if any(not word.strip() for word in self.neg):
            raise UsageError("--neg has an empty item; write the words separated by commas, e.g. --neg cat,dog.")
        if not self.question or any(not question.strip() for question in self.question):
            raise UsageError(f"--question is empty; ask something, e.g. {DEFAULT_QUESTION!r}.")
        if self.top_k < 1:
            raise UsageError(f"--top-k {self.top_k}: take 1 or more answers per question.")
        if self.main_object is not None and not self.main_object.strip():
            raise UsageError("--main-object is empty; name the object, e.g. --main-object pet, or leave it out.")
        if self.preset is not None and self.preset not in PRESETS:
            raise UsageError(f"--preset {self.preset!r}: the one preset is paper (the official code's settings).")
        if self.official and self.max_negatives is not None:
            raise UsageError("--max-negatives: the official code has no cap; leave it out with --preset paper.")
        if self.prompt.count("{}") != 1:
            raise UsageError(f"--prompt {self.prompt!r} needs one {{}} for the category, e.g. {DEFAULT_PROMPT!r}.")
        for option, value in (("--ask-from", self.ask_from), ("--ask-until", self.window_end)):
            if not math.isfinite(value) or not 0 <= value <= 1:
                raise UsageError(
                    f"{option} {value} is outside the steps; give a fraction of them from 0 to 1 (0.5: halfway)."
                )
        if self.window_end < self.ask_from:
            raise UsageError(
                f"--ask-until {self.window_end} comes before --ask-from {self.ask_from}; give an end after the start."
            )
        if self.ask_every < 1:
            raise UsageError(f"--ask-every {self.ask_every}: ask every 1 or more steps.")
        if self.max_negatives is not None and self.max_negatives < len(self.neg) + 1:
            raise UsageError(
                f"--max-negatives {self.max_negatives} leaves no room after the {len(self.neg)} given; raise it."
            )
        if self.steps is not None and self.steps < 1:
            raise UsageError(f"--steps must be at least 1 (got {self.steps}).")
        if self.guidance is not None and (not math.isfinite(self.guidance) or self.guidance <= 1):
            raise UsageError(
                f"--guidance {self.guidance}: negatives act through classifier-free guidance; give more than 1."
            )
        if self.size is not None and self.size <= 0:
            raise UsageError(f"--size must be a positive number of pixels (got {self.size}).")
        if self.preview_mode not in PREVIEWS:
            raise UsageError(
                f"--preview {self.preview!r}: choose tiny (a tiny autoencoder), full (the model's) or official."
            )


def ask_steps(total: int, ask_from: float, ask_until: float, every: int, official: bool = False) -> set[int]:
    """The step indices whose estimate the oracle sees: `int(from·N) <= i < int(until·N)` (the official code's
    formula for fractional bounds; its default window is every step, ours the first half), every `every`-th counted
    from the window's start; `official`: every step of the window (the official `freq` only decides which steps'
    answers are kept, `OfficialNegatives`)."""
    start, stop = int(ask_from * total), int(ask_until * total)
    return set(range(start, stop, 1 if official else every))


@dataclass(frozen=True)
class ImageRecord:
    """One finished image: its file, its negatives (`word`, `step` in force from, `source`), the oracle's raw
    answers (`step`, `answer`) and the seconds spent denoising and asking."""

    seed: int
    path: Path
    negatives: tuple[dict[str, object], ...]
    answers: tuple[dict[str, object], ...]
    seconds_denoising: float
    seconds_asking: float
    skipped: bool = False
    """Found finished from an earlier run, not redone."""

    def as_json(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "file": self.path.name,
            "negatives": list(self.negatives),
            "answers": list(self.answers),
            "seconds_denoising": round(self.seconds_denoising, 4),
            "seconds_asking": round(self.seconds_asking, 4),
        }


@dataclass(frozen=True)
class ImagineResult:
    out: Path
    images: tuple[ImageRecord, ...]
    grid: Path
    record: Path
    """`imagine.json`."""

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(image.path for image in self.images)

    @property
    def negatives(self) -> dict[int, list[str]]:
        """Per seed, its negative words in order."""
        return {image.seed: [str(entry["word"]) for entry in image.negatives] for image in self.images}


@dataclass(frozen=True)
class ImagineProgress:
    """One denoising step of one image; `added` are the negatives the oracle named at this step."""

    image: int
    images: int
    seed: int
    step: int
    steps: int
    added: tuple[str, ...] = ()
    skipped: bool = False
