"""The clean-image estimate x̂0 at a denoising step, from the latents and the *guided* model prediction.

The stock pipelines call `callback_on_step_end` after `scheduler.step`, with the new latents only. So `StepRecorder`
wraps the scheduler's `step` for the duration of one image and keeps what it was given (the guided prediction, the
timestep, the latents it started from) and the noise level it used; `clean_estimate` then applies the scheduler's
own formula. The official code estimates x̂0 = x_t − v for flow matching, dropping sigma_t; ours uses x_t − sigma_t·v
(`official_estimate` is theirs, for `--preset paper`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from conceptlab.engine.errors import UsageError


@dataclass
class StepInputs:
    """What the scheduler's last `step` was given, and the noise level it worked at."""

    model_output: torch.Tensor
    timestep: torch.Tensor
    sample: torch.Tensor
    sigma: float | None
    """sigma of the step for sigma-based schedulers (Euler, flow matching); None for DDPM/DDIM."""
    pred_original_sample: torch.Tensor | None
    """The scheduler's own x̂0, where its output carries one (only tests compare with it)."""


class StepRecorder:
    """Records each `scheduler.step` call while active; the scheduler's behaviour is unchanged."""

    def __init__(self, scheduler: Any):
        self.scheduler = scheduler
        self.last: StepInputs | None = None

    @contextmanager
    def active(self) -> Iterator[StepRecorder]:
        original = self.scheduler.step

        def recording_step(model_output, timestep, sample, *args, **kwargs):
            output = original(model_output, timestep, sample, *args, **kwargs)
            own = output[1] if isinstance(output, tuple) and len(output) > 1 else None  # return_dict=False
            own = getattr(output, "pred_original_sample", own)
            self.last = StepInputs(model_output, timestep, sample, self._sigma_used(), own)
            return output

        self.scheduler.step = recording_step
        try:
            yield self
        finally:
            del self.scheduler.step  # the instance attribute goes; the class's own method shows again

    def _sigma_used(self) -> float | None:
        """The sigma the step just taken used: sigma-based schedulers have advanced `step_index` past it."""
        sigmas, index = getattr(self.scheduler, "sigmas", None), getattr(self.scheduler, "step_index", None)
        if sigmas is None or index is None:
            return None
        return float(sigmas[index - 1])

    def official_estimate(self) -> torch.Tensor:
        """The official code's x̂0 (`_flow_to_x0` in custom_sd35.py): latents − guided prediction, no sigma, in the
        latents' own dtype."""
        if self.last is None:
            raise RuntimeError("No scheduler step was recorded yet.")
        return self.last.sample - self.last.model_output

    def clean_estimate(self) -> torch.Tensor:
        if self.last is None:
            raise RuntimeError("No scheduler step was recorded yet.")
        return clean_estimate(self.scheduler, self.last)


def clean_estimate(scheduler: Any, step: StepInputs) -> torch.Tensor:
    """x̂0 with the scheduler's parametrisation: flow matching x_t − sigma·v; sigma-space ε (Euler) x_t − sigma·ε;
    ᾱ-space ε (DDPM, DDIM) (x_t − √(1−ᾱ_t)·ε)/√ᾱ_t; v-prediction likewise; a sample prediction is x̂0 itself.
    Computed in float32."""
    config = scheduler.config
    sample = step.sample.float()
    output = step.model_output.float()[:, : sample.shape[1]]  # a learned variance rides in the extra channels
    prediction = getattr(config, "prediction_type", "flow_prediction" if step.sigma is not None else "epsilon")
    if type(scheduler).__name__.startswith("FlowMatch"):
        return sample - step.sigma * output
    if prediction == "sample":  # the model predicts x̂0 itself (the tiny Kandinsky decoder does)
        return _clipped(output, config)
    if step.sigma is not None:
        sigma = step.sigma
        if prediction == "epsilon":
            return sample - sigma * output
        if prediction == "v_prediction":
            return output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)
    elif prediction in ("epsilon", "v_prediction"):
        alpha = scheduler.alphas_cumprod[int(step.timestep)].float().to(sample.device)
        if prediction == "epsilon":
            estimate = (sample - (1 - alpha).sqrt() * output) / alpha.sqrt()
        else:
            estimate = alpha.sqrt() * sample - (1 - alpha).sqrt() * output
        return _clipped(estimate, config)
    raise UsageError(
        f"{type(scheduler).__name__} with prediction type {prediction!r} has no clean-image estimate here; "
        "use the model's own scheduler."
    )


def _clipped(estimate: torch.Tensor, config: Any) -> torch.Tensor:
    """x̂0 clipped as DDPM and DDIM clip it when their config says so."""
    if getattr(config, "clip_sample", False):
        return estimate.clamp(-config.clip_sample_range, config.clip_sample_range)
    return estimate
