"""`conceptlab create` and `conceptlab mix`: learn a new concept.

conceptlab create --category pet --neg cat,dog
conceptlab create --category "musical instrument" --neg guitar,piano --steps 1000 --seed 3
conceptlab create --category pet --neg cat,dog --model tiny --steps 200     # offline, seconds
conceptlab mix lobster turtle --weights 0.6,0.4
conceptlab create --resume runs/new-pet                                     # after Ctrl-C
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.markup import escape

from conceptlab.cli import options
from conceptlab.cli.output import stderr, stdout
from conceptlab.cli.progress import TrainingDisplay, training_progress
from conceptlab.engine.errors import UsageError
from conceptlab.engine.models.loading import ModelChoice, default_model
from conceptlab.engine.training.config import COMMAND_OPTIONS, STYLE_NEGATIVE_CLAMP, CreateConfig
from conceptlab.engine.training.create import CreateResult, RunCallbacks
from conceptlab.engine.training.interrupt import StopRequest, TrainingInterrupted, stop_on_signals
from conceptlab.engine.training.request import (
    CreateRequest,
    ResumeRequest,
    TrainRequest,
    command_config,
    train,
)

RESUME_MAY_CHANGE = {"resume_dir", "device", "dtype", "offload"}

CREATE_EXAMPLES = """
[bold]Examples[/]

  conceptlab create --category pet --neg cat,dog

  conceptlab create --category pet   [dim]# adaptive: an oracle names the negatives from the images[/]

  conceptlab create --category pet --oracle clip-zeroshot --ask-every 100 --max-negatives 6

  conceptlab create --category pet --neg cat,dog,hamster --gradual

  conceptlab create --category art --style

  conceptlab create --category pet --neg cat,dog --model tiny --steps 200   [dim]# offline, in seconds[/]

  conceptlab create --category "musical instrument" --neg guitar,piano --model kandinsky-2.2 --device cuda:1

  conceptlab create --resume runs/new-pet   [dim]# continue after Ctrl-C, to the same bytes[/]

Writes RUN/<token>.safetensors, RUN/log.jsonl, RUN/checkpoints/, RUN/images/ (every --every steps and a
strip.png) and RUN/similarities.png.

Offloading keeps only the model at work (prior, decoder or oracle) on the GPU.
By default it is on when a CUDA GPU's memory left free by the prior cannot
hold the decoder, the oracle's weights (BLIP-2 in float16: about 7.9 GB;
clip-zeroshot: none) and 2 GiB for activations. --offload forces it,
--no-offload keeps all three resident.

Ctrl-C (or SIGTERM) finishes the current step, saves the state and exits 130 with the resume command.
"""

MIX_EXAMPLES = """
[bold]Examples[/]

  conceptlab mix lobster turtle

  conceptlab mix lobster turtle --weights 0.6,0.4 --model tiny --steps 200
"""


def print_result(result: CreateResult) -> None:
    first, final = result.first_similarities, result.final_similarities
    lines = [f"[bold green]Learned[/] {escape(result.config.token)} in {escape(str(result.run_dir))}/"]
    for group, sign in (("positive", "+"), ("negative", "−")):
        for word, value in final[group].items():
            start = f"{first[group][word]:.3f}" if word in first[group] else "  new"
            lines.append(escape(f"  {sign} {word:<20} {start} → {value:.3f}"))
    if result.strip_path:
        lines.append(escape(f"  images   {result.strip_path}"))
    lines += [
        escape(f"  concept  {result.concept_path}"),
        escape(f"  log      {result.run_dir / 'log.jsonl'}"),
        escape(f"  plot     {result.run_dir / 'similarities.png'}"),
    ]
    for line in lines:
        stdout.print(line, soft_wrap=True, highlight=False)


def train_with_progress(request: TrainRequest, label: str, command: str) -> CreateResult:
    """Run `request` with a progress bar and print what was written."""
    return progress_of(request.total_steps(), label, command, lambda callbacks: train(request, callbacks))


def progress_of(total: int, label: str, command: str, run: Callable[[RunCallbacks], CreateResult]) -> CreateResult:
    """Run one engine call that trains `total` steps with a progress bar; Ctrl-C/SIGTERM stop it cleanly with a
    one-line resume hint (exit 130)."""
    stop = StopRequest()
    try:
        with stop_on_signals(stop), training_progress(total, label) as display:
            result = run(_callbacks(display, stop))
    except TrainingInterrupted as stopped:
        stderr.print(
            f"Interrupted after step {stopped.step} of {stopped.total}; "
            f"resume with: conceptlab {command} --resume {stopped.run_dir}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
        raise typer.Exit(stopped.exit_code) from None
    print_result(result)
    return result


def _callbacks(display: TrainingDisplay, stop: StopRequest) -> RunCallbacks:
    return RunCallbacks(display.on_step, display.on_negative, stop, display.on_parent_image, display.on_compile)


def _given_options(context: typer.Context) -> Iterator[str]:
    for parameter in context.command.params:
        source = context.get_parameter_source(parameter.name)
        if parameter.name not in RESUME_MAY_CHANGE and source is not None and source.name == "COMMANDLINE":
            yield parameter.opts[0] if parameter.param_type_name == "option" else parameter.name.upper()


def resume_request(context: click.Context) -> ResumeRequest:
    """What `--resume DIR` builds: the run's own settings; any other training option is refused, not ignored."""
    given = list(_given_options(context))
    if given:
        raise UsageError(f"--resume continues a run with its own settings; drop {', '.join(given)}.")
    params = context.params
    device, dtype = (None if params[name] == "auto" else params[name] for name in ("device", "dtype"))
    return ResumeRequest(params["resume_dir"], device, dtype, params["offload"])


def resume_training(context: typer.Context) -> CreateResult:
    """`--resume DIR`, with a progress bar."""
    request = resume_request(context)
    return train_with_progress(request, request.run_dir.name, context.info_name or "create")


def create_request(context: click.Context) -> CreateRequest:
    """What `conceptlab create` builds from its parsed options (the studio builds its requests through this too)."""
    params = context.params
    if params["category"] is None:
        raise UsageError("Missing option '--category' (or --resume DIR); e.g. --category pet.")
    values = options.option_values(CreateConfig, context, COMMAND_OPTIONS["create"])
    model = options.model_choice(context, default=default_model())
    return CreateRequest(command_config("create", values), model, params["out"], params["force"], params["offload"])


def run_training(
    config: CreateConfig, model: ModelChoice, out: Path | None, force: bool, offload: bool | None = None
) -> CreateResult:
    """Train `config` against `model` with a live progress bar and print what was written."""
    return train_with_progress(CreateRequest(config, model, out, force, offload), config.token, config.kind)


def create_command(
    context: typer.Context,
    category: Annotated[
        str | None, typer.Option(help="The broad category to invent a new member of, e.g. pet (required).")
    ] = None,
    neg: Annotated[
        str | None, typer.Option("--neg", help="Comma-separated members it must not look like, e.g. cat,dog.")
    ] = None,
    adaptive: Annotated[
        bool | None,
        typer.Option(
            "--adaptive/--no-adaptive",
            help="Ask an oracle what the images show and add its answers to the negatives "
            "(default: on when --neg is empty, as in the paper, or when any of --oracle, --oracle-model, "
            "--ask-every, --max-negatives, --vocab is given).",
            show_default=False,
        ),
    ] = None,
    oracle: Annotated[
        str | None,
        typer.Option(
            help="blip2 (the paper's), clip-zeroshot (light; the backend's CLIP), vilt or qwen2.5-vl. Default: the "
            "backend's."
        ),
    ] = None,
    oracle_model: options.OracleModelOpt = None,
    oracle_revision: options.OracleRevisionOpt = None,
    ask_every: Annotated[int | None, typer.Option(help="Ask the oracle every N steps (default: --every).")] = None,
    max_negatives: Annotated[
        int | None,
        typer.Option(help="Stop asking once this many negatives apply (default: no cap, as the official code)."),
    ] = None,
    vocab: Annotated[
        str | None, typer.Option(help="clip-zeroshot: a file of candidate words, one per line (default: built-in).")
    ] = None,
    style: Annotated[
        bool,
        typer.Option(
            "--style",
            help="Invent an art style: style templates, the content alone as positive, negative clamp 0.15 and the "
            "oracle's style question (official configs/new_art.yaml).",
        ),
    ] = False,
    gradual: Annotated[
        bool,
        typer.Option(
            "--gradual",
            help="Add the --neg words one at a time, shuffled with --seed: one at step 0, one more every --ask-every "
            "(default --every) steps.",
        ),
    ] = False,
    positive_clamp: Annotated[
        float, typer.Option(help="No reward for similarity to the category above this cosine (official code).")
    ] = CreateConfig.positive_clamp,
    negative_clamp: Annotated[
        float | None,
        typer.Option(
            help=f"No reward for similarity to a negative below this cosine (default {CreateConfig.negative_clamp}; "
            f"{STYLE_NEGATIVE_CLAMP} with --style, as the official code).",
            show_default=False,
        ),
    ] = None,
    constraint_encoder: options.ConstraintEncoderOpt = None,
    templates: options.TemplatesOpt = CreateConfig.template_set,
    positive_lambda: Annotated[
        float, typer.Option("--lambda", help="Weight of the positive term against the negatives' in the loss.")
    ] = CreateConfig.positive_lambda,
    images: options.ImagesOpt = True,
    image_seeds: options.ImageSeedsOpt = "42,500",
    image_size: options.ImageSizeOpt = None,
    image_steps: options.ImageStepsOpt = None,
    offload: options.OffloadOpt = None,
    token: options.TokenOpt = None,
    init: options.InitOpt = None,
    steps: options.StepsOpt = CreateConfig.steps,
    lr: options.LearningRateOpt = None,
    seed: options.SeedOpt = CreateConfig.seed,
    every: options.EveryOpt = CreateConfig.checkpoint_every,
    prior_steps: options.PriorStepsOpt = CreateConfig.prior_steps,
    prior_guidance: options.PriorGuidanceOpt = CreateConfig.prior_guidance,
    pad_prompts: options.PadPromptsOpt = None,
    compile_step: options.CompileOpt = False,
    model: options.ModelOpt = None,
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
    """Invent a new member of a category, unlike the given negatives."""
    if resume_dir is not None:
        resume_training(context)
        return
    request = create_request(context)
    train_with_progress(request, request.config.token, request.config.kind)


def mix_command(
    context: typer.Context,
    words: Annotated[list[str] | None, typer.Argument(help="Two or more words to blend, e.g. lobster turtle.")] = None,
    weights: Annotated[
        str | None, typer.Option(help="Comma-separated weight per word (default equal), e.g. 0.6,0.4.")
    ] = None,
    category: Annotated[str | None, typer.Option(help="Category the hybrid belongs to (recorded).")] = None,
    constraint_encoder: options.ConstraintEncoderOpt = None,
    templates: options.TemplatesOpt = CreateConfig.template_set,
    images: options.ImagesOpt = True,
    image_seeds: options.ImageSeedsOpt = "42,500",
    image_size: options.ImageSizeOpt = None,
    image_steps: options.ImageStepsOpt = None,
    offload: options.OffloadOpt = None,
    token: options.TokenOpt = None,
    init: options.InitOpt = None,
    steps: options.StepsOpt = CreateConfig.steps,
    lr: options.LearningRateOpt = None,
    seed: options.SeedOpt = CreateConfig.seed,
    every: options.EveryOpt = CreateConfig.checkpoint_every,
    prior_steps: options.PriorStepsOpt = CreateConfig.prior_steps,
    prior_guidance: options.PriorGuidanceOpt = CreateConfig.prior_guidance,
    pad_prompts: options.PadPromptsOpt = None,
    compile_step: options.CompileOpt = False,
    model: options.ModelOpt = None,
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
    """Blend several words into one hybrid concept (no negatives)."""
    if resume_dir is not None:
        resume_training(context)
        return
    words = tuple(word.strip() for word in words or ())
    values = options.option_values(CreateConfig, context, COMMAND_OPTIONS["mix"]) | {"positives": words}
    model = options.model_choice(context, default=default_model())
    run_training(command_config("mix", values), model, out, force, offload)
