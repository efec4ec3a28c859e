"""One frozen configuration per training command, validated on creation and recorded in the concept."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from conceptlab.engine.adaptive.oracle import STYLE_CONTENT
from conceptlab.engine.errors import UsageError
from conceptlab.engine.options import TRAINING_STEPS, check_bounds, check_seeds, renamed
from conceptlab.engine.prior.tokens import check_token_text
from conceptlab.engine.training.templates import EDIT_TEMPLATES, TEMPLATE_SETS, templates_for

STYLE_NEGATIVE_CLAMP = 0.15
"""The negative clamp of style mode (official `configs/new_art.yaml`: `min_cosine_thr: 0.15`)."""
CONSTRAINT_ENCODERS = ("mclip", "prior")


def _check_words(option: str, words: tuple[str, ...]) -> None:
    for word in words:
        if not word.strip():
            raise UsageError(f"{option} has an empty item; separate words with single commas, e.g. cat,dog.")
        if "{" in word or "}" in word:
            raise UsageError(f"{option} item {word!r} contains a brace; give plain words.")
    seen = [word.lower() for word in words]
    duplicates = sorted({word for word in seen if seen.count(word) > 1})
    if duplicates:
        raise UsageError(f"{option} lists {', '.join(duplicates)} more than once; give each word once.")


@dataclass(frozen=True)
class CreateConfig:
    """Everything that decides what `create` and `mix` learn (the official code's defaults)."""

    kind: str
    token: str
    initializer: str = renamed("init")
    positives: tuple[str, ...] = renamed("words")
    weights: tuple[float, ...]
    negatives: tuple[str, ...] = renamed("neg", default=())
    category: str | None = None
    steps: int = field(default=2500, metadata=TRAINING_STEPS)
    learning_rate: float | None = renamed("lr", default=None)
    """None: the backend's recommendation (1e-4 for Kandinsky, as the official code)."""
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-2
    prior_steps: int = 5
    prior_guidance: float = 4.0
    positive_lambda: float = renamed("lambda", default=1.0)
    positive_clamp: float = 0.28
    negative_clamp: float = 0.2
    seed: int = 0
    checkpoint_every: int = renamed("every", default=250)
    template_set: str = renamed("templates", default="official")
    """`official` (the official code's lists) or `textual-inversion`; `templates` holds the list that ran."""
    templates: tuple[str, ...] = ()
    """Empty: the `template_set`'s object (or, in style mode, style) templates."""
    style: bool = False
    """Style mode: style templates, a content-only positive, and the oracle asks which art style the images show."""
    gradual: bool = False
    """Add the given negatives one at a time (shuffled with the seed): one at step 0, one more every `ask_interval`."""
    constraint_encoder: str | None = None
    """How constraint prompts are embedded: `mclip` (the 2.1 decoder's M-CLIP, as the official code) or `prior`
    (the prior's CLIP `text_embeds`); None: the backend's default, resolved (and recorded) when training starts."""
    adaptive: bool = False
    """Ask an oracle what the concept's images show and add its answers to the negatives."""
    oracle: str | None = None
    """None: the backend's default oracle."""
    oracle_model: str | None = None
    oracle_revision: str | None = None
    ask_every: int | None = None
    """None: every `checkpoint_every` steps."""
    max_negatives: int | None = None
    """None: no cap, as the official code."""
    vocab_file: str | None = renamed("vocab", default=None)
    images: bool = True
    """Render the concept at every checkpoint (needs the backend's decoder)."""
    image_seeds: tuple[int, ...] = (42, 500)
    image_size: int | None = None
    """Size of checkpoint, oracle and parent renders; None: the backend's (the decoder's 512 px for Kandinsky)."""
    image_steps: int | None = None
    """Decoder steps of those renders; None: the backend's (50 for Kandinsky)."""
    images_per_parent: int = 8
    """evolve: how many images of each concept parent are rendered to stand for it."""
    space: str = "image"
    """What is compared with the constraints: `image`, the prior's output (the paper); `text`, the prompt's CLIP text
    embedding before the prior, which the official evolution code optimizes (its swapped unpack)."""
    pad_prompts: bool | None = None
    """Give the prior every prompt at the tokenizer's full length (77), the attention mask carrying the padding:
    one shape for every template. None: on CUDA (and with `compile`); off on a CPU, where it costs several times
    the work for the same result up to float rounding."""
    compile: bool = False
    """Compile the training step once with `torch.compile` (CUDA graphs on a GPU); pads the prompts."""

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.kind not in ("create", "mix", "evolve"):
            raise UsageError(f"Unknown kind {self.kind!r}; expected create, mix or evolve.")
        check_token_text(self.token)
        if not self.positives:
            raise UsageError("No positive words; give --category (create) or at least one word (mix).")
        _check_words("positives", self.positives)
        _check_words("--neg", self.negatives)
        overlap = sorted({w.lower() for w in self.negatives} & {w.lower() for w in self.positives})
        if overlap:
            raise UsageError(f"{', '.join(overlap)} is both a positive and a negative; drop it from --neg.")
        self._check_weights()
        self._check_numbers()
        if self.template_set not in TEMPLATE_SETS:
            raise UsageError(f"--templates {self.template_set!r} is unknown; choose {' or '.join(TEMPLATE_SETS)}.")
        if self.constraint_encoder not in (None, *CONSTRAINT_ENCODERS):
            raise UsageError(f"--constraint-encoder {self.constraint_encoder!r} is unknown; choose mclip or prior.")
        if not self.templates:
            object.__setattr__(self, "templates", templates_for(self.template_set, self.style))
        if not self.templates or any(t.count("{}") != 1 for t in self.templates):
            raise UsageError("Every template needs exactly one {} where the concept goes.")

    def _check_weights(self) -> None:
        if len(self.weights) != len(self.positives):
            raise UsageError(
                f"--weights has {len(self.weights)} values for {len(self.positives)} positives; give one each."
            )
        if any(not math.isfinite(w) or w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise UsageError("--weights must be finite, non-negative and sum to more than 0.")

    def _check_numbers(self) -> None:
        if self.steps <= 0:
            raise UsageError(f"--steps must be at least 1 (got {self.steps}).")
        if self.learning_rate is not None and not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise UsageError(f"--lr must be a positive number (got {self.learning_rate}).")
        if self.prior_steps <= 0:
            raise UsageError(f"--prior-steps must be at least 1 (got {self.prior_steps}).")
        if not math.isfinite(self.prior_guidance) or self.prior_guidance < 0:
            raise UsageError(f"--prior-guidance must be a non-negative number (got {self.prior_guidance}).")
        if self.checkpoint_every <= 0:
            raise UsageError(f"--every must be at least 1 (got {self.checkpoint_every}).")
        if self.seed < 0:
            raise UsageError(f"--seed must be a non-negative integer (got {self.seed}).")
        if not (math.isfinite(self.positive_clamp) and -1 < self.positive_clamp <= 1):
            raise UsageError(f"--positive-clamp must be a cosine in (-1, 1] (got {self.positive_clamp}); default 0.28.")
        if not (math.isfinite(self.negative_clamp) and -1 <= self.negative_clamp < 1):
            raise UsageError(f"--negative-clamp must be a cosine in [-1, 1) (got {self.negative_clamp}); default 0.2.")
        if not (math.isfinite(self.positive_lambda) and self.positive_lambda >= 0):
            raise UsageError(f"--lambda must be a non-negative number (got {self.positive_lambda}); default 1.")
        if not self.initializer.strip():
            raise UsageError("--init is empty; give a word to start the token from (default: the category).")
        if self.ask_every is not None and self.ask_every <= 0:
            raise UsageError(f"--ask-every must be at least 1 (got {self.ask_every}).")
        if self.max_negatives is not None and self.max_negatives < 0:
            raise UsageError(f"--max-negatives must be 0 or more (got {self.max_negatives}).")
        if self.adaptive and self.kind != "create":
            raise UsageError(f"{self.kind} has no negatives, so --adaptive does not apply; drop it.")
        if self.space not in ("image", "text"):
            raise UsageError(f"--space {self.space!r} is unknown; choose image or text.")
        if self.images_per_parent <= 0:
            raise UsageError(f"--images-per-parent must be at least 1 (got {self.images_per_parent}).")
        if self.gradual and not self.negatives:
            raise UsageError("--gradual adds the --neg words one at a time; give some with --neg.")
        if self.compile and self.pad_prompts is False:
            raise UsageError("--compile needs one prompt shape (--pad-prompts); drop --no-pad-prompts.")
        if self.compile and self.space == "text":
            raise UsageError("--compile compiles the prior's image-space step; drop --compile to use --space text.")
        if not self.image_seeds or any(seed < 0 for seed in self.image_seeds):
            raise UsageError("--image-seeds must be non-negative integers, e.g. 42,500.")
        check_seeds("--seed", [self.seed])
        check_seeds("--image-seeds", self.image_seeds)
        for option, value in (("--image-size", self.image_size), ("--image-steps", self.image_steps)):
            if value is not None and value <= 0:
                raise UsageError(f"{option} must be at least 1 (got {value}); leave it out for the decoder's default.")

    def checkpoint_prompts(self, step: int) -> list[str]:
        """The three prompts rendered at every checkpoint, as the official `save_images` (`training/coach.py`).

        The first is the one the oracle is shown. The third is an edit template drawn anew at each checkpoint (there
        with Python's global `random`; here from the seed and the step, so a resumed run draws the same one).
        """
        token = self.token
        if self.style:
            return [
                f"a painting of {STYLE_CONTENT} in a valley in the style of {token}",
                f"a painting of a dog in the style of {token}",
                f"a painting of fruit bowl in the style of {token}",
            ]
        edit = random.Random(f"{self.seed}:{step}").choice(EDIT_TEMPLATES)
        return [
            f"Professional high-quality art of a {token}. photorealistic, 4k, HQ",
            f"a photo of a {token}",
            edit.format(token),
        ]

    @property
    def ask_interval(self) -> int:
        return self.ask_every or self.checkpoint_every

    @property
    def normalized_weights(self) -> tuple[float, ...]:
        total = sum(self.weights)
        return tuple(weight / total for weight in self.weights)


ORACLE_OPTIONS = {
    "oracle": "--oracle",
    "oracle_model": "--oracle-model",
    "oracle_revision": "--oracle-revision",
    "ask_every": "--ask-every",
    "max_negatives": "--max-negatives",
    "vocab_file": "--vocab",
}
"""Settings that only the oracle reads (field: option): giving any of them asks for adaptive negatives."""

TRAINING_OPTIONS = (
    "steps",
    "learning_rate",
    "seed",
    "checkpoint_every",
    "initializer",
    "token",
    "prior_steps",
    "prior_guidance",
    "images",
    "image_seeds",
    "template_set",
    "image_size",
    "image_steps",
    "pad_prompts",
    "compile",
)
"""The `CreateConfig` fields that create, mix and evolve all take as options."""
COMMAND_OPTIONS: dict[str, tuple[str, ...]] = {
    "create": (
        "category",
        "negatives",
        "style",
        "gradual",
        "adaptive",
        *ORACLE_OPTIONS,
        "positive_clamp",
        "negative_clamp",
        "positive_lambda",
        "constraint_encoder",
        *TRAINING_OPTIONS,
    ),
    "mix": ("positives", "weights", "category", "constraint_encoder", *TRAINING_OPTIONS),
    "evolve": ("weights", "images_per_parent", "space", *TRAINING_OPTIONS),
}
"""The `CreateConfig` fields each training command takes as options (a field's option name: `option_name`)."""


def _adaptive(adaptive: bool | None, negatives: tuple[str, ...], oracle_settings: dict) -> bool:
    """None follows the paper (ask when no negatives are given), unless an oracle setting is given: then ask."""
    given = [option for field, option in ORACLE_OPTIONS.items() if field in oracle_settings]
    if adaptive is False and given:
        raise UsageError(f"{given[0]} sets up the oracle, which --no-adaptive turns off; drop one of them.")
    if adaptive is None:
        return not negatives or bool(given)
    return adaptive


def create_config(
    category: str,
    negatives: tuple[str, ...] = (),
    *,
    initializer: str | None = None,
    token: str | None = None,
    adaptive: bool | None = None,
    style: bool = False,
    **settings,
) -> CreateConfig:
    """The config of `create`: a new member of `category`, unlike each of `negatives`.

    `adaptive` None follows the paper: ask an oracle for negatives when none are given, or when any oracle
    setting (`ORACLE_OPTIONS`; None counts as not given) is; `adaptive=False` with one of them is refused.
    """
    oracle_settings = {field: settings.pop(field, None) for field in ORACLE_OPTIONS}
    oracle_settings = {field: value for field, value in oracle_settings.items() if value is not None}
    settings = {field: value for field, value in settings.items() if value is not None}
    if style:
        settings.setdefault("negative_clamp", STYLE_NEGATIVE_CLAMP)
    category = category.strip()
    if not category:
        raise UsageError("--category is empty; name a broad category such as pet, fruit or furniture.")
    return CreateConfig(
        kind="create",
        token=token or f"<new-{category.replace(' ', '-')}>",
        initializer=category if initializer is None else initializer,
        positives=(category,),
        weights=(1.0,),
        negatives=negatives,
        category=category,
        style=style,
        adaptive=_adaptive(adaptive, negatives, oracle_settings),
        **oracle_settings,
        **settings,
    )


def mix_config(
    words: tuple[str, ...],
    weights: tuple[float, ...] | None = None,
    *,
    initializer: str | None = None,
    token: str | None = None,
    category: str | None = None,
    **settings,
) -> CreateConfig:
    """The config of `mix`: a hybrid of several positive words, optionally weighted, with no negatives."""
    if len(words) < 2:
        raise UsageError("mix needs at least two words, for example: conceptlab mix lobster turtle.")
    slug = "-".join(word.strip().replace(" ", "-") for word in words)
    return CreateConfig(
        kind="mix",
        token=token or f"<{slug}>",
        initializer=words[0] if initializer is None else initializer,
        positives=words,
        weights=weights or (1.0,) * len(words),
        category=category,
        **settings,
    )


def evolve_config(
    labels: tuple[str, ...],
    weights: tuple[float, ...] | None,
    *,
    initializer: str,
    token: str,
    category: str | None = None,
    **settings,
) -> CreateConfig:
    """The config of `evolve`: one positive per parent (its images), weighted, no clamp and no negatives,
    so the objective is the paper's `L_mix = 1 - sum_i w_i mean_c cos(c, P(v))`."""
    return CreateConfig(
        kind="evolve",
        token=token,
        initializer=initializer,
        positives=labels,
        weights=weights or (1.0,) * len(labels),
        category=category,
        positive_clamp=1.0,
        **settings,
    )
