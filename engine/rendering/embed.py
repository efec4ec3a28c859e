"""`embed`: the prior's image embeddings of a prompt with concepts, exported for any model that takes CLIP image
embeddings (`KandinskyV22Pipeline(image_embeds=...)`, IP-Adapter's `ip_adapter_image_embeds`, Stable unCLIP).

Row i is exactly what a stock prior pipeline with the concepts loaded by `load_into` returns with its defaults,
`pipe(prompt, generator=torch.Generator().manual_seed(seed + i), ...)` (`negative_prompt=None`: guidance against the
empty prompt, the zero image's embedding as negative): the same numbers `conceptlab sample` paints. A
`negative_prompt` (even "") is run through the prior instead, as the pipeline does when given one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save as safetensors_bytes

from conceptlab.engine.concept.file import check_concept_fits, load_concept
from conceptlab.engine.errors import UsageError
from conceptlab.engine.io.atomic import refuse_existing, write_atomically
from conceptlab.engine.io.images import check_finite_tensors
from conceptlab.engine.io.safetensors_header import encode_metadata
from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.models.model_cache import ModelCache
from conceptlab.engine.options import COMMAND_LINE_ONLY, check_bounds
from conceptlab.engine.prior.tokens import concept_token
from conceptlab.engine.rendering.render import prior_image_embeds, render_settings
from conceptlab.engine.rendering.sample import check_sample_request, model_prompt

EMBEDS_FORMAT = 1


@dataclass(frozen=True)
class EmbedRequest:
    """`conceptlab embed`: one field per option."""

    concepts: tuple[Path, ...]
    prompt: str
    out: Path = field(metadata=COMMAND_LINE_ONLY)
    n: int = 4
    seed: int = 42
    prior_steps: int | None = None
    prior_guidance: float | None = None
    negative_prompt: str | None = None
    """None: the stock pipeline's default and `sample`'s (the zero image's embedding as negative)."""
    model: str | None = None
    """None: the model the first concept was trained against."""
    backend: str | None = None
    revision: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    force: bool = field(default=False, metadata=COMMAND_LINE_ONLY)


@dataclass(frozen=True)
class EmbedResult:
    path: Path
    image_embeds: torch.Tensor
    negative_image_embeds: torch.Tensor


def embed(
    request: EmbedRequest, *, cache: ModelCache | None = None, on_row: Callable[[int], None] | None = None
) -> EmbedResult:
    """Write `image_embeds` and `negative_image_embeds` (`[n, dim]`, row i from seed `seed + i`) to `request.out`.

    Everything that needs no model (the concepts, prompt, count, seed, output) is checked before weights are read.
    """
    check_bounds(request)
    concepts = [load_concept(path) for path in request.concepts]
    display_prompt = check_sample_request(concepts, request.prompt, request.n, request.seed)
    if request.out.suffix != ".safetensors":
        raise UsageError(f"--out {request.out}: write the embeddings to a .safetensors file.")
    refuse_existing([request.out], request.force, "--out")
    choice = ModelChoice.for_concepts(
        concepts, request.model, request.backend, request.device, request.dtype, request.revision
    )
    loaded = (cache or ModelCache()).prior(choice)
    for path, concept in zip(request.concepts, concepts, strict=True):
        check_concept_fits(concept, loaded.info, source=str(path))
    settings = render_settings(loaded.backend, prior_steps=request.prior_steps, prior_guidance=request.prior_guidance)
    stack = loaded.stack
    tokens = [concept_token(stack.tokenizer, stack.text_encoder, c.sha256, c.vector) for c in concepts]
    prompt = model_prompt(request.prompt, concepts, tokens)
    rows = []
    for index in range(request.n):
        rows.append(prior_image_embeds(stack, [prompt], request.seed + index, settings, request.negative_prompt))
        if on_row:
            on_row(index)
    image_embeds = torch.cat([row[0] for row in rows]).float().cpu().contiguous()
    negative_image_embeds = torch.cat([row[1] for row in rows]).float().cpu().contiguous()
    metadata = {
        "conceptlab.embeds": EMBEDS_FORMAT,
        "concepts": [{"token": c.token, "sha256": c.sha256} for c in concepts],
        "prompt": display_prompt,
        "negative_prompt": request.negative_prompt,
        "seeds": list(range(request.seed, request.seed + request.n)),
        "prior_steps": settings.prior_steps,
        "prior_guidance": settings.prior_guidance,
        "backend": loaded.info.backend,
        "model": loaded.info.model,
        "model_revision": loaded.info.revision,
        "embedding_dim": int(image_embeds.shape[1]),
    }
    tensors = {"image_embeds": image_embeds, "negative_image_embeds": negative_image_embeds}
    check_finite_tensors(tensors, f"--out {request.out}")
    write_atomically(request.out, safetensors_bytes(tensors, encode_metadata(metadata)))
    return EmbedResult(request.out, image_embeds, negative_image_embeds)
