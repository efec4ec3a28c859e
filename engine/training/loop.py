"""The training loop: one token embedding, optimized through the prior against text constraints."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from conceptlab.engine.errors import TrainingError
from conceptlab.engine.models.backend import PriorStack
from conceptlab.engine.prior.sampling import sample_image_embeds
from conceptlab.engine.prior.tokens import EncodedPrompts, Placeholder, add_placeholder_token, encode_prompts
from conceptlab.engine.training.compiled_step import CompiledStep
from conceptlab.engine.training.config import CreateConfig
from conceptlab.engine.training.constraints import ConstraintBank, TextEmbedder
from conceptlab.engine.training.interrupt import TrainingInterrupted
from conceptlab.engine.training.negatives import Negative, NegativeSchedule
from conceptlab.engine.training.objectives import ObjectiveValue, ObjectiveWeights, conceptlab_loss
from conceptlab.engine.training.state import TrainingState


@dataclass(frozen=True)
class StepRecord:
    """What happened at one training step (one line of `log.jsonl`)."""

    step: int
    template: str
    loss: float
    positive: dict[str, float]
    negative: dict[str, float]

    @property
    def max_negative(self) -> float | None:
        return max(self.negative.values()) if self.negative else None

    def as_json(self) -> dict:
        return {
            "step": self.step,
            "template": self.template,
            "loss": self.loss,
            "positive": self.positive,
            "negative": self.negative,
        }


StepCallback = Callable[[StepRecord], None]
CheckpointCallback = Callable[[int, torch.Tensor], None]


class Constraints(Protocol):
    """Unit embeddings to compare the prior's output with, per template and word (see `ConstraintBank`)."""

    def add_words(self, words: list[str]) -> None: ...

    def embeds(self, template_index: int, words: list[str]) -> torch.Tensor: ...


StateCallback = Callable[[TrainingState], None]
AskCallback = Callable[[int, list[str]], list[str]]
"""`ask(step, known_negatives)` -> new negative words, judged from the concept as it is at `step`."""


def _check_finite(step: int, loss: torch.Tensor, vector: torch.nn.Parameter) -> None:
    if not math.isfinite(loss.item()) or vector.grad is None or not torch.isfinite(vector.grad).all():
        raise TrainingError(
            f"Step {step}: the loss or its gradient is not finite; try a smaller --lr or --dtype float32."
        )


@dataclass
class TrainingSession:
    """Everything one `create` step needs, prepared once: placeholder, cached constraints, optimizer, generator.

    `train_token` is a loop over `step`; the benchmark times the same `step`, so what it measures is what ships.
    """

    stack: PriorStack
    config: CreateConfig
    generator: torch.Generator
    placeholder: Placeholder
    bank: Constraints
    unconditional: EncodedPrompts
    weights: ObjectiveWeights
    optimizer: torch.optim.Optimizer
    pad_prompts: bool = False
    """Give the prior the full 77-token context (one shape for every prompt) instead of the prompt's own length."""
    compiled: CompiledStep | None = None
    compile_seconds: float | None = None
    """With `compiled`: the wall time of the first step, tracing and compiling forward and backward included."""

    def _forward(self, prompt: str, positive_embeds: torch.Tensor, negative_embeds: torch.Tensor) -> ObjectiveValue:
        if self.compiled is not None:
            return self.compiled(prompt, positive_embeds, negative_embeds)
        config, stack = self.config, self.stack
        encoded = encode_prompts(stack.tokenizer, stack.text_encoder, [prompt])
        image_embed = sample_image_embeds(
            stack.prior,
            stack.scheduler,
            encoded,
            self.unconditional,
            num_steps=config.prior_steps,
            guidance_scale=config.prior_guidance,
            generator=self.generator,
            skip_padding=not self.pad_prompts,
        )[0]
        if config.space == "text":  # the prior still draws its noise, so both spaces consume the generator alike
            image_embed = encoded.text_embeds[0]
        return conceptlab_loss(image_embed, positive_embeds, negative_embeds, self.weights)

    def step(self, step: int, positives: list[str], negatives: list[str]) -> StepRecord:
        """One optimization step: sample a template, run the prior with gradients, update the token row."""
        config = self.config
        started = time.perf_counter()
        template_index = int(torch.randint(len(config.templates), (1,), generator=self.generator))
        template = config.templates[template_index]
        value = self._forward(
            template.format(config.token),
            self.bank.embeds(template_index, positives),
            self.bank.embeds(template_index, negatives),
        )
        self.optimizer.zero_grad(set_to_none=True)
        value.loss.backward()
        _check_finite(step, value.loss, self.placeholder.vector)
        self.optimizer.step()
        if self.compiled is not None and self.compile_seconds is None:
            self.compile_seconds = time.perf_counter() - started
        return StepRecord(
            step,
            template,
            value.loss.item(),
            dict(zip(positives, value.positive_similarities.tolist(), strict=True)),
            dict(zip(negatives, value.negative_similarities.tolist(), strict=True)),
        )

    def vector(self) -> torch.Tensor:
        """The token's current embedding (float32, CPU, detached)."""
        return self.placeholder.vector.detach().float().cpu().clone()

    def snapshot(self, step: int, negatives: NegativeSchedule) -> TrainingState:
        """The state after `step` steps (the caller sets the log position, which it alone knows)."""
        moments = {
            index: {key: value.detach().cpu().clone() for key, value in values.items()}
            for index, values in self.optimizer.state_dict()["state"].items()
        }
        return TrainingState(self.vector(), moments, step, self.generator.get_state(), negatives.records(), step)

    def restore(self, state: TrainingState) -> None:
        """Put the vector, the optimizer moments and the generator back where `state` left them."""
        vector = self.placeholder.vector
        with torch.no_grad():
            vector.copy_(state.vector.reshape(vector.shape).to(vector.device))
        if state.optimizer:
            groups = self.optimizer.state_dict()["param_groups"]
            self.optimizer.load_state_dict({"state": state.optimizer, "param_groups": groups})
        self.generator.set_state(state.generator)


def start_training(
    stack: PriorStack,
    config: CreateConfig,
    constraints: Constraints | None = None,
    embed: TextEmbedder | None = None,
    compile_backend: str | None = None,
) -> TrainingSession:
    """Add the token and prepare what never changes during training (constraints, the empty prompt's encoding).

    `constraints` replaces the text constraints (evolve's parent images); `embed` the prior's CLIP as the
    constraints' text encoder (M-CLIP). With `config.compile` the step is compiled by `torch.compile` with
    `compile_backend` (None: inductor; tests use "eager", capture only).
    """
    generator = torch.Generator().manual_seed(config.seed)
    placeholder = add_placeholder_token(stack.tokenizer, stack.text_encoder, config.token, config.initializer)
    content_only = frozenset(config.positives) if config.style else frozenset()
    bank = constraints or ConstraintBank(
        stack.tokenizer, stack.text_encoder, config.templates, embed=embed, content_only=content_only
    )
    bank.add_words([*config.positives, *config.negatives])
    with torch.no_grad():
        unconditional = encode_prompts(stack.tokenizer, stack.text_encoder, [""])
    weights = ObjectiveWeights(
        config.normalized_weights, config.positive_lambda, config.positive_clamp, config.negative_clamp
    )
    optimizer = torch.optim.AdamW(
        [placeholder.vector], lr=config.learning_rate, betas=config.betas, weight_decay=config.weight_decay
    )
    pad = pads_prompts(config, stack.device)
    compiled = None
    if config.compile:
        compiled = CompiledStep(
            stack, unconditional, weights, generator, config.prior_steps, config.prior_guidance, compile_backend
        )
    return TrainingSession(
        stack, config, generator, placeholder, bank, unconditional, weights, optimizer, pad, compiled
    )


def pads_prompts(config: CreateConfig, device: torch.device) -> bool:
    """`config.pad_prompts`, or when it is None (auto): on CUDA, where one shape lets a step be captured once,
    and always with `--compile`; on a CPU the prompt's own length is several times less work."""
    if config.pad_prompts is not None:
        return config.pad_prompts
    return device.type == "cuda" or config.compile


def negative_schedule(config: CreateConfig, on_add: Callable[[Negative], None] | None = None) -> NegativeSchedule:
    """The run's negatives: the given ones at once, or (`gradual`) one more every `ask_interval` steps."""
    return NegativeSchedule(
        config.negatives, gradual=config.gradual, interval=config.ask_interval, seed=config.seed, on_add=on_add
    )


def ask_steps(config: CreateConfig) -> list[int]:
    """Steps after which the oracle is asked: every `ask_every`, and first on the initial concept when no
    negatives are given; never at the last step (nothing would use the answer)."""
    if not config.adaptive:
        return []
    start = 0 if not config.negatives or config.gradual else config.ask_interval
    return list(range(start, config.steps, config.ask_interval))


def _resume_negatives(session: TrainingSession, negatives: NegativeSchedule, state: TrainingState) -> None:
    """Bring back the negatives in force at `state`; those added during training enter the constraint bank
    in the groups they were added in, as in the uninterrupted run."""
    negatives.restore(state.negatives)
    added = [n for n in state.negatives if n.get("source") == "oracle"]
    for step in dict.fromkeys(n["step"] for n in added):
        session.bank.add_words([n["word"] for n in added if n["step"] == step])


def train_token(
    stack: PriorStack,
    config: CreateConfig,
    *,
    on_step: StepCallback | None = None,
    on_checkpoint: CheckpointCallback | None = None,
    ask: AskCallback | None = None,
    negatives: NegativeSchedule | None = None,
    constraints: Constraints | None = None,
    start: TrainingState | None = None,
    on_state: StateCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    embed: TextEmbedder | None = None,
    on_compile: Callable[[float], None] | None = None,
) -> torch.Tensor:
    """Learn `config.token` and return its final embedding (float32, CPU).

    Every random draw (template choice, the prior's noise) comes from one generator seeded with
    `config.seed`, so the same seed on the same machine gives the same bytes. `negatives` (updated in place)
    says which negatives apply when; `ask` is called at `ask_steps(config)` to add new ones. `start` resumes
    from a saved state, to the same bytes as an uninterrupted run; `on_state` receives the state at every
    checkpoint and before a requested stop (`should_stop()` is read between steps), which raises
    `TrainingInterrupted`. With `config.compile`, `on_compile` hears the first step's wall time (compiling included).
    """
    session = start_training(stack, config, constraints, embed)
    negatives = negatives or negative_schedule(config)
    positives, questions = list(config.positives), set(ask_steps(config))

    def consult_oracle(step: int) -> None:
        cap = config.max_negatives
        if ask and step in questions and (cap is None or len(negatives.active) < cap):
            room = None if cap is None else cap - len(negatives.active)
            session.bank.add_words(negatives.add(ask(step, negatives.words)[:room], step))

    if start is not None:
        session.restore(start)
        _resume_negatives(session, negatives, start)
    else:
        negatives.activate(0)
        consult_oracle(0)
    for step in range((start.step if start else 0) + 1, config.steps + 1):
        if should_stop and should_stop():
            if on_state:
                on_state(session.snapshot(step - 1, negatives))
            raise TrainingInterrupted(step - 1, config.steps)
        negatives.activate(step - 1)
        record = session.step(step, positives, negatives.words)
        if on_compile and session.compiled is not None and session.compile_seconds is not None:
            on_compile(session.compile_seconds)
            on_compile = None
        if on_step:
            on_step(record)
        if on_checkpoint and (step % config.checkpoint_every == 0 or step == config.steps):
            on_checkpoint(step, session.vector())
        consult_oracle(step)
        if on_state and (step % config.checkpoint_every == 0 or step == config.steps):  # resume finishes a run
            on_state(session.snapshot(step, negatives))
    return session.vector()
