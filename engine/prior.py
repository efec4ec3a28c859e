"""Differentiable sampling of the diffusion prior: prompt encodings in, CLIP image embeddings out."""

from __future__ import annotations

from typing import Any

import torch
from diffusers.utils.torch_utils import randn_tensor

from conceptlab.engine.tokens import EncodedPrompts


def sample_image_embeds(
    prior: Any,
    scheduler: Any,
    prompts: EncodedPrompts,
    unconditional: EncodedPrompts,
    *,
    num_steps: int = 5,
    guidance_scale: float = 4.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Run the prior's sampling loop with classifier-free guidance, keeping gradients to the prompt.

    This is the loop of diffusers' `KandinskyPriorPipeline.__call__` (same noise draws from `generator`, same
    guidance, same scheduler steps) without its `torch.no_grad`, so a loss on the returned image embeddings
    reaches the text encoder's inputs. `unconditional` holds the encoding of one negative prompt (usually "").
    """
    batch = prompts.text_embeds.shape[0]
    guided = guidance_scale > 1.0
    if guided:
        negative = unconditional.repeat(batch)
        text_embeds = torch.cat([negative.text_embeds, prompts.text_embeds])
        hidden_states = torch.cat([negative.hidden_states, prompts.hidden_states])
        attention_mask = torch.cat([negative.attention_mask, prompts.attention_mask])
    else:
        text_embeds, hidden_states, attention_mask = (
            prompts.text_embeds,
            prompts.hidden_states,
            prompts.attention_mask,
        )

    scheduler.set_timesteps(num_steps, device=text_embeds.device)
    timesteps = scheduler.timesteps
    shape = (batch, prior.config.embedding_dim)
    latents = randn_tensor(shape, generator=generator, device=text_embeds.device, dtype=text_embeds.dtype)
    latents = latents * scheduler.init_noise_sigma
    for index, timestep in enumerate(timesteps):
        model_input = torch.cat([latents, latents]) if guided else latents
        predicted = prior(
            model_input,
            timestep=timestep,
            proj_embedding=text_embeds,
            encoder_hidden_states=hidden_states,
            attention_mask=attention_mask,
        ).predicted_image_embedding
        if guided:
            uncond, cond = predicted.chunk(2)
            predicted = uncond + guidance_scale * (cond - uncond)
        previous = None if index + 1 == len(timesteps) else timesteps[index + 1]
        latents = scheduler.step(
            predicted, timestep=timestep, sample=latents, generator=generator, prev_timestep=previous
        ).prev_sample
    return prior.post_process_latents(latents)
