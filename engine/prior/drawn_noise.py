"""The prior's sampling loop with its noise drawn beforehand, so the loop itself can be compiled as one graph.

`sample_image_embeds` draws the initial latents and each step's variance noise from a `torch.Generator` inside
the loop, and `UnCLIPScheduler.step` branches on the timestep's value; neither can be captured as one graph
(generators and data-dependent branches break it). Here the same draws are made first, in the same order from the
same generator, and the scheduler's per-step coefficients are read out as numbers, so the loop is pure tensor
arithmetic with one shape: the same image embeddings up to float rounding, and the same generator state after.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers.utils.torch_utils import randn_tensor

from conceptlab.engine.prior.sampling import guided_context, guided_prediction
from conceptlab.engine.prior.tokens import EncodedPrompts


@dataclass(frozen=True)
class SamplerStep:
    """One step of `UnCLIPScheduler.step` as numbers: `x_prev = a·x0 + b·x_t + std·noise` (x0 clipped)."""

    timestep: int
    original_coeff: float
    sample_coeff: float
    noise_std: float
    """0 at the last step (t = 0), where the scheduler adds no noise."""


@dataclass(frozen=True)
class PriorSchedule:
    """A whole sampling run of the scheduler as numbers."""

    steps: tuple[SamplerStep, ...]
    clip_range: float | None
    init_noise_sigma: float

    @property
    def draws(self) -> int:
        """Noise tensors a run draws: the initial latents, then one per step with t > 0."""
        return 1 + sum(step.timestep > 0 for step in self.steps)


def prior_schedule(scheduler: Any, num_steps: int) -> PriorSchedule:
    """The scheduler's coefficients for `num_steps` steps, computed with its own tensors (float32) and formulas."""
    config = scheduler.config
    if config.variance_type != "fixed_small_log" or config.prediction_type != "sample":
        raise ValueError("only UnCLIPScheduler with fixed_small_log variance and sample prediction is supported")
    scheduler.set_timesteps(num_steps)
    timesteps = [int(t) for t in scheduler.timesteps]
    steps = []
    for index, t in enumerate(timesteps):
        previous = timesteps[index + 1] if index + 1 < len(timesteps) else t - 1
        alpha_prod = scheduler.alphas_cumprod[t]
        alpha_prod_prev = scheduler.alphas_cumprod[previous] if previous >= 0 else scheduler.one
        beta = scheduler.betas[t] if previous == t - 1 else 1 - alpha_prod / alpha_prod_prev
        original = alpha_prod_prev**0.5 * beta / (1 - alpha_prod)
        current = (1 - beta) ** 0.5 * (1 - alpha_prod_prev) / (1 - alpha_prod)
        std = float(scheduler._get_variance(t, prev_timestep=previous)) if t > 0 else 0.0
        steps.append(SamplerStep(t, float(original), float(current), std))
    clip_range = float(config.clip_sample_range) if config.clip_sample else None
    return PriorSchedule(tuple(steps), clip_range, float(scheduler.init_noise_sigma))


def draw_noise(
    schedule: PriorSchedule,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None,
) -> list[torch.Tensor]:
    """The initial latents and each noisy step's variance noise, drawn as `sample_image_embeds` draws them."""
    return [randn_tensor(shape, generator=generator, device=device, dtype=dtype) for _ in range(schedule.draws)]


def sample_with_noise(
    prior: Any,
    schedule: PriorSchedule,
    prompts: EncodedPrompts,
    unconditional: EncodedPrompts,
    noise: list[torch.Tensor],
    guidance_scale: float,
) -> torch.Tensor:
    """The prior's guided sampling loop on the full (padded) context, with `noise` from `draw_noise`."""
    context = guided_context(prompts, unconditional, guidance_scale > 1.0)
    latents = noise[0] * schedule.init_noise_sigma
    draws = iter(noise[1:])
    for step in schedule.steps:
        predicted = guided_prediction(prior, latents, step.timestep, context, guidance_scale)
        if schedule.clip_range is not None:
            predicted = predicted.clamp(-schedule.clip_range, schedule.clip_range)
        latents = step.original_coeff * predicted + step.sample_coeff * latents
        if step.timestep > 0:
            latents = latents + step.noise_std * next(draws)
    return prior.post_process_latents(latents)
