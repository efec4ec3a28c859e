"""The training loop: one token embedding, optimized through the prior against text constraints."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from conceptlab.engine.backend import PriorStack
from conceptlab.engine.config import CreateConfig
from conceptlab.engine.constraints import ConstraintBank
from conceptlab.engine.errors import TrainingError
from conceptlab.engine.interrupt import TrainingInterrupted
from conceptlab.engine.objectives import ObjectiveWeights, conceptlab_loss
from conceptlab.engine.prior import sample_image_embeds
from conceptlab.engine.state import TrainingState
from conceptlab.engine.tokens import add_placeholder_token, encode_prompts


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
StateCallback = Callable[[TrainingState], None]


def initial_state(config: CreateConfig, vector: torch.Tensor) -> TrainingState:
    """Step 0: the initializer's vector, no optimizer moments, the generator seeded with `config.seed`."""
    return TrainingState(
        vector=vector.detach().float().cpu().clone(),
        optimizer={},
        step=0,
        generator=torch.Generator().manual_seed(config.seed).get_state(),
        negatives=[{"word": word, "step": 0} for word in config.negatives],
        log_lines=0,
    )


def _snapshot(
    step: int, vector: torch.Tensor, optimizer: torch.optim.Optimizer, generator: torch.Generator, negatives: list
) -> TrainingState:
    """The state after `step` steps; `on_step` logs one line per step, so the log position is `step` lines."""
    moments = {
        index: {key: value.detach().cpu().clone() for key, value in values.items()}
        for index, values in optimizer.state_dict()["state"].items()
    }
    return TrainingState(
        vector.detach().float().cpu().clone(), moments, step, generator.get_state(), [dict(n) for n in negatives], step
    )


def _restore(state: TrainingState, vector: torch.nn.Parameter, optimizer: torch.optim.Optimizer) -> torch.Generator:
    """Put the vector and the optimizer back where `state` left them; return the generator at its position."""
    with torch.no_grad():
        vector.copy_(state.vector.reshape(vector.shape).to(vector.device))
    if state.optimizer:
        optimizer.load_state_dict({"state": state.optimizer, "param_groups": optimizer.state_dict()["param_groups"]})
    generator = torch.Generator()
    generator.set_state(state.generator)
    return generator


def _check_finite(step: int, loss: torch.Tensor, vector: torch.nn.Parameter) -> None:
    if not math.isfinite(loss.item()) or vector.grad is None or not torch.isfinite(vector.grad).all():
        raise TrainingError(
            f"Step {step}: the loss or its gradient is not finite; try a smaller --lr or --dtype float32."
        )


def train_token(
    stack: PriorStack,
    config: CreateConfig,
    *,
    on_step: StepCallback | None = None,
    on_checkpoint: CheckpointCallback | None = None,
    start: TrainingState | None = None,
    on_state: StateCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """Learn `config.token` and return its final embedding (float32, CPU).

    Every random draw (template choice, the prior's noise) comes from one generator seeded with
    `config.seed`, so the same seed on the same machine gives the same bytes. `start` resumes from a saved
    state (to the same bytes as an uninterrupted run); `on_state` receives the state at every checkpoint step
    and before a requested stop (`should_stop()` is read between steps), which raises `TrainingInterrupted`.
    """
    placeholder = add_placeholder_token(stack.tokenizer, stack.text_encoder, config.token, config.initializer)
    state = start or initial_state(config, placeholder.vector)
    bank = ConstraintBank(stack.tokenizer, stack.text_encoder, config.templates)
    bank.add_words([*config.positives, *config.negatives])
    for added in state.negatives[len(config.negatives) :]:
        bank.add_words([added["word"]])
    with torch.no_grad():
        unconditional = encode_prompts(stack.tokenizer, stack.text_encoder, [""])
    weights = ObjectiveWeights(
        config.normalized_weights, config.positive_lambda, config.positive_clamp, config.negative_clamp
    )
    optimizer = torch.optim.AdamW(
        [placeholder.vector], lr=config.learning_rate, betas=config.betas, weight_decay=config.weight_decay
    )
    generator = _restore(state, placeholder.vector, optimizer)
    positives, negatives = list(config.positives), [n["word"] for n in state.negatives]
    for step in range(state.step + 1, config.steps + 1):
        if should_stop and should_stop():
            if on_state:
                on_state(_snapshot(step - 1, placeholder.vector, optimizer, generator, state.negatives))
            raise TrainingInterrupted(step - 1, config.steps)
        template_index = int(torch.randint(len(config.templates), (1,), generator=generator))
        template = config.templates[template_index]
        prompt = encode_prompts(stack.tokenizer, stack.text_encoder, [template.format(config.token)])
        image_embed = sample_image_embeds(
            stack.prior,
            stack.scheduler,
            prompt,
            unconditional,
            num_steps=config.prior_steps,
            guidance_scale=config.prior_guidance,
            generator=generator,
        )[0]
        value = conceptlab_loss(
            image_embed,
            bank.embeds(template_index, positives),
            bank.embeds(template_index, negatives),
            weights,
        )
        optimizer.zero_grad(set_to_none=True)
        value.loss.backward()
        _check_finite(step, value.loss, placeholder.vector)
        optimizer.step()
        if on_step:
            on_step(
                StepRecord(
                    step,
                    template,
                    value.loss.item(),
                    dict(zip(positives, value.positive_similarities.tolist(), strict=True)),
                    dict(zip(negatives, value.negative_similarities.tolist(), strict=True)),
                )
            )
        if on_checkpoint and (step % config.checkpoint_every == 0 or step == config.steps):
            on_checkpoint(step, placeholder.vector.detach().float().cpu().clone())
        if on_state and step % config.checkpoint_every == 0:
            on_state(_snapshot(step, placeholder.vector, optimizer, generator, state.negatives))
    return placeholder.vector.detach().float().cpu().clone()
