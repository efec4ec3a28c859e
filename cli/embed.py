"""`conceptlab embed`: export the prior's image embeddings of a prompt with concepts, for other models.

conceptlab embed runs/new-pet/new-pet.safetensors --prompt "a photo of a {}" -n 8 --out pet-embeds.safetensors
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conceptlab.cli import options
from conceptlab.cli.output import stdout
from conceptlab.cli.progress import image_progress
from conceptlab.engine.rendering.embed import EmbedRequest, embed
from conceptlab.engine.rendering.render import RenderSettings

EMBED_EXAMPLES = """
[bold]Examples[/]

  conceptlab embed runs/new-pet/new-pet.safetensors --prompt "a photo of a {}" -n 8 --out pet.safetensors

  conceptlab embed pet.safetensors --prompt "a plush toy {}" --seed 500 --prior-steps 25 --out toy.safetensors

Writes image_embeds and negative_image_embeds, [N, dim] each: row i is what a stock prior pipeline with the
concepts loaded by load_into returns with its defaults for seed SEED+i, and what sample paints. They go wherever CLIP
image embeddings go: KandinskyV22Pipeline(image_embeds=...), IP-Adapter's ip_adapter_image_embeds,
StableUnCLIPImg2ImgPipeline.
"""

DEFAULTS = RenderSettings()


def embed_command(
    context: typer.Context,
    concepts: Annotated[list[Path], typer.Argument(help="Concept files (.safetensors) to use in the prompt.")],
    prompt: Annotated[str, typer.Option(help="Prompt; {} (or {0}, {1}, ... or the token itself) marks each concept.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The .safetensors file to write.")],
    n: Annotated[int, typer.Option("-n", help="Number of rows (seeds SEED, SEED+1, ...).")] = EmbedRequest.n,
    seed: Annotated[int, options.seed_option("Seed of the first row (0 or more).")] = EmbedRequest.seed,
    prior_steps: Annotated[
        int | None, typer.Option(help=f"Prior sampling steps (default {DEFAULTS.prior_steps}).")
    ] = None,
    prior_guidance: Annotated[
        float | None, typer.Option(help=f"Prior classifier-free guidance (default {DEFAULTS.prior_guidance}).")
    ] = None,
    negative_prompt: Annotated[
        str | None,
        typer.Option(
            help="Negative prompt of the prior (its embedding is negative_image_embeds). Default: none, as sample and "
            "a stock prior pipeline (the zero image's embedding is the negative); --negative-prompt '' gives the "
            "prior's output for the empty prompt (embed's earlier default)."
        ),
    ] = EmbedRequest.negative_prompt,
    model: options.ConceptModelOpt = None,
    backend: options.BackendOpt = None,
    revision: options.RevisionOpt = None,
    device: options.DeviceOpt = "auto",
    dtype: options.DtypeOpt = "auto",
    force: Annotated[bool, options.force_option("an existing --out file")] = False,
) -> None:
    """Export the prior's image embeddings of a prompt with concepts."""
    request = options.request(EmbedRequest, context)
    with image_progress(request.n, "Embedding") as on_row:
        result = embed(request, on_row=on_row)
    rows, width = result.image_embeds.shape
    stdout.print(f"[bold green]Wrote[/] {rows} image embeddings of width {width}", highlight=False)
    print(result.path)
