"""The ConceptLab objective on the prior's output (paper, section 3; official code's clamps)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ObjectiveWeights:
    """How similarities turn into a loss.

    Positives are clamped at most `positive_clamp` (0.28): a text-image cosine of 0.28 already means a clear
    member of the category, and rewarding more would pull the concept back to the category's prototype.
    Negatives are clamped at least `negative_clamp` (0.2): unrelated text and image embeddings sit near 0.2,
    so pushing below that buys nothing and only drifts the concept off the CLIP manifold.
    """

    positive_weights: tuple[float, ...]
    positive_lambda: float = 1.0
    positive_clamp: float = 0.28
    negative_clamp: float = 0.2


@dataclass(frozen=True)
class ObjectiveValue:
    loss: torch.Tensor
    positive_similarities: torch.Tensor
    negative_similarities: torch.Tensor


def cosine_to_constraints(image_embed: torch.Tensor, constraint_embeds: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of one image embedding `[dim]` to each of `[n, dim]` unit constraint embeddings."""
    return F.normalize(image_embed.float(), dim=-1) @ constraint_embeds.T


def conceptlab_loss(
    image_embed: torch.Tensor,
    positive_embeds: torch.Tensor,
    negative_embeds: torch.Tensor,
    weights: ObjectiveWeights,
) -> ObjectiveValue:
    """`L = 0.5 (mean_neg + max_neg) + lambda * sum_i w_i (1 - pos_i)` on clamped similarities."""
    positive = cosine_to_constraints(image_embed, positive_embeds)
    negative = cosine_to_constraints(image_embed, negative_embeds)
    positive_weights = torch.tensor(weights.positive_weights, dtype=positive.dtype, device=positive.device)
    loss = weights.positive_lambda * (positive_weights * (1 - positive.clamp(max=weights.positive_clamp))).sum()
    if negative.numel():
        clamped = negative.clamp(min=weights.negative_clamp)
        loss = loss + 0.5 * (clamped.mean() + clamped.max())
    return ObjectiveValue(loss, positive.detach(), negative.detach())
