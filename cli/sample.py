"""`conceptlab sample`: render prompts that use learned concepts.

conceptlab sample runs/new-pet/new-pet.safetensors --prompt "a plush toy {}"
conceptlab sample a.safetensors b.safetensors --prompt "{0} and {1} playing" -n 8 --seed 500
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer
from rich.markup import escape

from conceptlab.cli import options
from conceptlab.cli.output import stdout
from conceptlab.cli.progress import image_progress
from conceptlab.engine.rendering.render import RenderSettings
from conceptlab.engine.rendering.sample import SampleRequest, sample

SAMPLE_EXAMPLES = """
[bold]Examples[/]

  conceptlab sample runs/new-pet/new-pet.safetensors --prompt "a plush toy {}"

  conceptlab sample pet.safetensors fruit.safetensors --prompt "{0} and {1} playing" -n 8 --seed 500

  conceptlab sample runs/x/new-pet.safetensors --prompt "a photo of a {}" --model tiny   [dim]# offline[/]

  conceptlab sample pet-2.2.safetensors --prompt "a plush toy {}" --via ip-adapter-sdxl --ip-scale 0.8

Writes OUT/<prompt>-seed<S>-<i>.png per image and OUT/<prompt>-seed<S>-n<N>-grid.png, and prints their paths.
[bold]Memory[/]: on a GPU the prior and the decoder are both kept on it only if they fit; otherwise each phase
(prior sampling, then decoding) moves the model it needs onto the GPU and parks the other on the CPU.
--offload forces that, --no-offload keeps both resident.
"""

DEFAULTS = RenderSettings()


def sample_command(
    context: typer.Context,
    concepts: Annotated[list[Path], typer.Argument(help="Concept files (.safetensors) to use in the prompt.")],
    prompt: Annotated[str, typer.Option(help="Prompt; {} (or {0}, {1}, ... or the token itself) marks each concept.")],
    n: Annotated[int, typer.Option("-n", help="Number of images (seeds SEED, SEED+1, ...).")] = SampleRequest.n,
    seed: Annotated[
        int, options.seed_option("Seed of the first image (0 or more): the same seed gives the same image.")
    ] = SampleRequest.seed,
    size: Annotated[int | None, typer.Option(help=f"Image size in pixels (default {DEFAULTS.size}; tiny: 32).")] = None,
    steps: Annotated[int | None, typer.Option(help=f"Decoder steps (default {DEFAULTS.steps}; tiny: 10).")] = None,
    guidance: Annotated[
        float | None, typer.Option(help=f"Decoder classifier-free guidance (default {DEFAULTS.guidance}).")
    ] = None,
    prior_steps: Annotated[
        int | None,
        typer.Option(
            help=f"Prior sampling steps (default {DEFAULTS.prior_steps}, as the official scripts/infer.py: the "
            "sampler the token was optimized against during training)."
        ),
    ] = None,
    prior_guidance: Annotated[
        float | None, typer.Option(help=f"Prior classifier-free guidance (default {DEFAULTS.prior_guidance}).")
    ] = None,
    decoder_prompt: Annotated[
        str | None, typer.Option(help="The decoder's own text prompt (Kandinsky 2.1 only; default empty).")
    ] = None,
    negative_prompt: Annotated[
        str | None,
        typer.Option(
            help="Negative prompt of the prior; its image embedding becomes the decoder's negative (default: none, "
            "the prior guides against the empty prompt and the decoder's negative is the zero image's embedding, "
            "as in the official code; --negative-prompt '' gives the prior's output for the empty prompt)."
        ),
    ] = SampleRequest.negative_prompt,
    decoder: options.DecoderOpt = None,
    decoder_revision: options.DecoderRevisionOpt = None,
    grid: Annotated[
        bool, typer.Option("--grid/--no-grid", help="Also write a grid with the prompt as caption.")
    ] = SampleRequest.grid,
    offload: Annotated[
        bool | None,
        typer.Option(
            "--offload/--no-offload",
            help="Keep only the model in use on the GPU (default: only when prior and decoder do not fit together).",
        ),
    ] = None,
    via: Annotated[
        str | None,
        typer.Option(help="Render through another model: ip-adapter-sdxl (2.2 concepts) or unclip (2.1 concepts)."),
    ] = None,
    via_model: Annotated[
        str | None, typer.Option(help="The --via model: an id or folder (ip-adapter-sdxl: BASE[,ADAPTER]).")
    ] = None,
    ip_scale: Annotated[
        float | None, typer.Option(help="IP-Adapter scale of --via ip-adapter-sdxl (default 0.6).")
    ] = None,
    noise_level: Annotated[
        int | None, typer.Option(help="Noise added to the image embedding by --via unclip, 0-999 (default 0).")
    ] = None,
    model: options.ConceptModelOpt = None,
    backend: options.BackendOpt = None,
    revision: options.RevisionOpt = None,
    device: options.DeviceOpt = "auto",
    dtype: options.DtypeOpt = "auto",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for the images (default: samples/ beside the concept).")
    ] = None,
    force: Annotated[bool, options.force_option("images of an earlier sample with the same names")] = False,
) -> None:
    """Render prompts that use learned concepts."""
    request = sample_request(context)
    with image_progress(request.n, "Rendering") as on_image:
        result = sample(request, on_image=on_image)
    prompt = escape(repr(result.prompt))
    seeds = f"seeds {request.seed} to {request.seed + request.n - 1}"
    stdout.print(f"[bold green]Rendered[/] {prompt} ({seeds})", highlight=False)
    for path in [*result.images, *([result.grid] if result.grid else [])]:
        print(path)


def sample_request(context: click.Context) -> SampleRequest:
    """What `conceptlab sample` builds from its parsed options."""
    return options.request(SampleRequest, context)
