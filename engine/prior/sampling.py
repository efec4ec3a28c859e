"""Differentiable sampling of the diffusion prior: prompt encodings in, CLIP image embeddings out."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from diffusers.utils.torch_utils import randn_tensor

from conceptlab.engine.prior.tokens import EncodedPrompts


def sample_image_embeds(
    prior: Any,
    scheduler: Any,
    prompts: EncodedPrompts,
    unconditional: EncodedPrompts,
    *,
    num_steps: int = 5,
    guidance_scale: float = 4.0,
    generator: torch.Generator | None = None,
    skip_padding: bool = True,
) -> torch.Tensor:
    """Run the prior's sampling loop with classifier-free guidance, keeping gradients to the prompt.

    This is the loop of diffusers' `KandinskyPriorPipeline.__call__` (same noise draws from `generator`, same
    guidance, same scheduler steps) without its `torch.no_grad`, so a loss on the returned image embeddings
    reaches the text encoder's inputs. `unconditional` holds the encoding of one negative prompt (usually "").
    With `skip_padding` the prior sees only the prompts' real tokens (see `_without_padding`): the same result
    up to float rounding, several times less work.
    """
    batch = prompts.text_embeds.shape[0]
    context = guided_context(prompts, unconditional, guidance_scale > 1.0)
    if skip_padding:
        length = int(context.attention_mask.sum(dim=1).max())
        context = EncodedPrompts(
            context.text_embeds, context.hidden_states[:, :length], context.attention_mask[:, :length]
        )
    device, dtype = context.text_embeds.device, context.text_embeds.dtype
    scheduler.set_timesteps(num_steps, device=device)
    timesteps = scheduler.timesteps
    latents = randn_tensor((batch, prior.config.embedding_dim), generator=generator, device=device, dtype=dtype)
    latents = latents * scheduler.init_noise_sigma
    with _without_padding(prior, context.hidden_states.shape[1]):
        for index, timestep in enumerate(timesteps):
            predicted = guided_prediction(prior, latents, timestep, context, guidance_scale)
            previous = None if index + 1 == len(timesteps) else timesteps[index + 1]
            latents = scheduler.step(
                predicted, timestep=timestep, sample=latents, generator=generator, prev_timestep=previous
            ).prev_sample
    return prior.post_process_latents(latents)


def guided_context(prompts: EncodedPrompts, unconditional: EncodedPrompts, guided: bool) -> EncodedPrompts:
    """What the prior is conditioned on: with guidance, the unconditional encoding once per prompt and then the
    prompts (diffusers' order); without, the prompts alone."""
    if not guided:
        return prompts
    negative = unconditional.repeat(prompts.text_embeds.shape[0])
    return EncodedPrompts(
        torch.cat([negative.text_embeds, prompts.text_embeds]),
        torch.cat([negative.hidden_states, prompts.hidden_states]),
        torch.cat([negative.attention_mask, prompts.attention_mask]),
    )


def guided_prediction(
    prior: Any, latents: torch.Tensor, timestep: Any, context: EncodedPrompts, guidance_scale: float
) -> torch.Tensor:
    """The prior's prediction for `latents` at `timestep` given `context` (from `guided_context`), combined with
    classifier-free guidance when `guidance_scale` is above 1 (diffusers' rule)."""
    guided = guidance_scale > 1.0
    predicted = prior(
        torch.cat([latents, latents]) if guided else latents,
        timestep=timestep,
        proj_embedding=context.text_embeds,
        encoder_hidden_states=context.hidden_states,
        attention_mask=context.attention_mask,
    ).predicted_image_embedding
    if not guided:
        return predicted
    uncond, cond = predicted.chunk(2)
    return uncond + guidance_scale * (cond - uncond)


@contextmanager
def _without_padding(prior: Any, text_length: int) -> Iterator[None]:
    """Let `prior` take `text_length` text tokens instead of its full context, for prompts padded no further.

    The prior's attention is causal and masks padding as keys, and its output is read at the last token: the
    padding positions never reach the output. Dropping them, with the positional embeddings and the causal mask
    of the positions that remain, computes the same thing on about 11 tokens instead of 81. The model is
    restored on exit.
    """
    full_length = prior.config.num_embeddings
    if text_length >= full_length:
        yield
        return
    kept = torch.cat([torch.arange(text_length), torch.arange(full_length, prior.positional_embedding.shape[1])])
    kept = kept.to(prior.positional_embedding.device)
    positional, causal = prior.positional_embedding, prior.causal_attention_mask
    prior.positional_embedding = torch.nn.Parameter(positional[:, kept], requires_grad=False)
    prior.causal_attention_mask = causal[:, kept][:, :, kept]
    try:
        yield
    finally:
        prior.positional_embedding, prior.causal_attention_mask = positional, causal
