"""`conceptlab evolve`: a child of learned concepts (or image folders), trained against their images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer

from conceptlab.cli import options
from conceptlab.cli.create import resume_training, train_with_progress
from conceptlab.engine.errors import UsageError
from conceptlab.engine.training.config import COMMAND_OPTIONS, CreateConfig
from conceptlab.engine.training.request import EvolveRequest

EVOLVE_EXAMPLES = """
[bold]Examples[/]

  conceptlab evolve runs/pet-a/new-pet.safetensors runs/pet-b/new-pet.safetensors

  conceptlab evolve parent1.safetensors parent2.safetensors --weights 0.7,0.3 --out runs/gen2

  conceptlab evolve runs/gen2/evo-1a2b3c4d.safetensors photos/my-lizard/ --model kandinsky-2.1

Parents are concept files or folders of images. Each concept parent's images are rendered once and cached by
its sha256. The child records its parents and their whole lineage: see conceptlab lineage CHILD.
"""


def evolve_command(
    context: typer.Context,
    parents: Annotated[list[Path] | None, typer.Argument(help="Concept files and/or folders of images.")] = None,
    weights: Annotated[
        str | None, typer.Option(help="Comma-separated weight per parent (default equal), e.g. 0.7,0.3.")
    ] = None,
    images_per_parent: Annotated[
        int, typer.Option(help="Images rendered for each concept parent (fixed seeds).")
    ] = CreateConfig.images_per_parent,
    token: Annotated[str | None, typer.Option(help="Token of the child (default: <evo-HASH of the parents>).")] = None,
    init: Annotated[
        str | None,
        typer.Option("--init", help="Word the child starts from (default: the parents' category, or the first's)."),
    ] = None,
    steps: options.StepsOpt = CreateConfig.steps,
    lr: options.LearningRateOpt = None,
    seed: options.SeedOpt = CreateConfig.seed,
    every: options.EveryOpt = CreateConfig.checkpoint_every,
    prior_steps: options.PriorStepsOpt = CreateConfig.prior_steps,
    prior_guidance: options.PriorGuidanceOpt = CreateConfig.prior_guidance,
    space: Annotated[
        str,
        typer.Option(
            help="image: optimize the prior's output toward the parents' images (the paper); text: the prompt's CLIP "
            "text embedding before the prior, as the official evolution code does (it unpacks the two swapped).",
        ),
    ] = CreateConfig.space,
    templates: options.TemplatesOpt = CreateConfig.template_set,
    pad_prompts: options.PadPromptsOpt = None,
    compile_step: options.CompileOpt = False,
    images: options.ImagesOpt = True,
    image_seeds: options.ImageSeedsOpt = "42,500",
    image_size: options.ImageSizeOpt = None,
    image_steps: options.ImageStepsOpt = None,
    offload: options.OffloadOpt = None,
    model: options.ConceptModelOpt = None,
    backend: options.BackendOpt = None,
    revision: options.RevisionOpt = None,
    decoder: options.DecoderOpt = None,
    decoder_revision: options.DecoderRevisionOpt = None,
    device: options.DeviceOpt = "auto",
    dtype: options.DtypeOpt = "auto",
    out: options.OutOpt = None,
    force: options.ForceRunOpt = False,
    resume_dir: options.ResumeOpt = None,
) -> None:
    """Evolve a new concept from parents: L = 1 - sum_i w_i mean cos(parent image, prior output)."""
    if resume_dir is not None:
        resume_training(context)
        return
    train_with_progress(evolve_request(context), "evolve", "evolve")


def evolve_request(context: click.Context) -> EvolveRequest:
    """What `conceptlab evolve` builds from its parsed options (the studio builds its requests through this too)."""
    params = context.params
    if not params["parents"]:
        raise UsageError("Missing PARENT...: give concept files and/or image folders (or --resume DIR).")
    training = options.option_values(CreateConfig, context, COMMAND_OPTIONS["evolve"])
    model = options.model_choice(context, default=None)
    return EvolveRequest(tuple(params["parents"]), model, training, params["out"], params["force"], params["offload"])
