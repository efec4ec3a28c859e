"""The training step's forward pass (text encoder, prior sampling with gradients, objective) as one compiled graph.

Every prompt is padded to the tokenizer's full length and the prior's noise is drawn beforehand
(`conceptlab.engine.prior.drawn_noise`), so the graph has one shape for every template and is compiled once; on
CUDA with `mode="reduce-overhead"` (CUDA graphs), which removes the launch overhead that bounds a step of a 1 B
prior at batch 2. The same generator draws the same numbers in the same order as the eager step, so a compiled
run learns the eager run's concept up to float rounding.
"""

from __future__ import annotations

import torch

from conceptlab.engine.models.backend import PriorStack
from conceptlab.engine.prior.drawn_noise import draw_noise, prior_schedule, sample_with_noise
from conceptlab.engine.prior.tokens import EncodedPrompts
from conceptlab.engine.training.objectives import ObjectiveValue, ObjectiveWeights, conceptlab_loss

COMPILE_BACKEND = "inductor"
"""`torch.compile`'s backend when none is given."""


def compile_mode(device: torch.device) -> str | None:
    """CUDA graphs on a GPU, where a step is bound by kernel launches; the default mode elsewhere."""
    return "reduce-overhead" if device.type == "cuda" else None


class CompiledStep:
    """`__call__(prompt, positive_embeds, negative_embeds)` -> the objective, through `torch.compile`.

    The forward graph compiles on the first call and the backward graph on the first `backward()`, so the
    caller times its first whole step as the compile time.
    """

    def __init__(
        self,
        stack: PriorStack,
        unconditional: EncodedPrompts,
        weights: ObjectiveWeights,
        generator: torch.Generator,
        prior_steps: int,
        guidance_scale: float,
        backend: str | None = None,
    ):
        self.stack, self.unconditional, self.weights, self.generator = stack, unconditional, weights, generator
        self.schedule = prior_schedule(stack.scheduler, prior_steps)
        self.guidance_scale = guidance_scale
        backend = backend or COMPILE_BACKEND
        mode = compile_mode(stack.device) if backend == "inductor" else None
        self.compiled = torch.compile(self._forward, fullgraph=True, backend=backend, mode=mode)

    def _forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        noise: list[torch.Tensor],
        positive_embeds: torch.Tensor,
        negative_embeds: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        output = self.stack.text_encoder(input_ids)
        prompt = EncodedPrompts(output.text_embeds, output.last_hidden_state, attention_mask)
        image_embed = sample_with_noise(
            self.stack.prior, self.schedule, prompt, self.unconditional, noise, self.guidance_scale
        )[0]
        value = conceptlab_loss(image_embed, positive_embeds, negative_embeds, self.weights)
        return value.loss, value.positive_similarities, value.negative_similarities

    def __call__(self, prompt: str, positive_embeds: torch.Tensor, negative_embeds: torch.Tensor) -> ObjectiveValue:
        stack = self.stack
        tokens = stack.tokenizer(
            [prompt],
            padding="max_length",
            max_length=stack.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        shape = (1, stack.prior.config.embedding_dim)
        noise = draw_noise(self.schedule, shape, stack.dtype, stack.device, self.generator)
        loss, positive, negative = self.compiled(
            tokens.input_ids.to(stack.device),
            tokens.attention_mask.bool().to(stack.device),
            noise,
            positive_embeds,
            negative_embeds,
        )
        return ObjectiveValue(loss, positive, negative)
