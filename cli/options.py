"""Option types shared by every command, defined once."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
import typer
from typer.models import OptionInfo

from conceptlab.cli.parsing import integer_list, number_list, word_list
from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.options import MAX_SEED, check_seeds, option_kinds, request_values

Request = TypeVar("Request")

LIST_PARSERS: dict[str, Callable[[str, str], tuple | None]] = {
    "words": lambda _option, value: word_list(value),
    "floats": number_list,
    "ints": integer_list,
}
"""How a comma-separated option is read, by the kind of the field it sets (`conceptlab.engine.options`)."""

MODEL_FORMS = "a backend name (tiny, kandinsky-2.1, kandinsky-2.2: its default weights), a hub id or a local folder"


def model_option(purpose: str) -> OptionInfo:
    """`--model/-m`. Left out it is None on every command: the default model or the concepts' own decides."""
    return typer.Option("--model", "-m", help=f"{purpose}: {MODEL_FORMS}.")


ModelOpt = Annotated[str | None, model_option("Model to train (default kandinsky-2.1)")]
ConceptModelOpt = Annotated[str | None, model_option("Model (default: the one the first concept was made with)")]
PlanModelOpt = Annotated[
    str | None, model_option("Model of the jobs that name none and read no concept (default kandinsky-2.1)")
]
TrainedWithModelOpt = Annotated[
    str, model_option("The model it was trained with (kandinsky-2.1 for the official code; required)")
]
BackendOpt = Annotated[
    str | None,
    typer.Option(help="Backend for a hub id or folder given to --model (tiny, kandinsky-2.1, kandinsky-2.2)."),
]
RevisionOpt = Annotated[str | None, typer.Option(help="Hub revision (branch, tag or commit) of --model.")]
DecoderOpt = Annotated[
    str | None,
    typer.Option(
        help="Decoder hub id or local folder (default: the one the concept records, the settings file's, else the "
        "backend's)."
    ),
]
DecoderRevisionOpt = Annotated[str | None, typer.Option(help="Hub revision of --decoder.")]
OracleModelOpt = Annotated[
    str | None,
    typer.Option(
        help="The oracle's weights: a hub id or folder of its kind, or tiny (default: the settings file's, else the "
        "oracle's own, e.g. Salesforce/blip2-flan-t5-xl)."
    ),
]
OracleRevisionOpt = Annotated[str | None, typer.Option(help="Hub revision of --oracle-model.")]
ClipOpt = Annotated[
    str | None,
    typer.Option(
        help="Evaluating CLIP: hub id, folder or evaluator name (default: the settings file's, else the backend's: "
        "openai/clip-vit-large-patch14 for Kandinsky)."
    ),
]
ClipRevisionOpt = Annotated[str | None, typer.Option(help="Hub revision of --clip.")]
ImageSizeOpt = Annotated[
    int | None,
    typer.Option(
        help="Side in pixels of checkpoint, oracle and parent renders (default: the decoder's, 512 for Kandinsky)."
    ),
]
ImageStepsOpt = Annotated[
    int | None, typer.Option(help="Decoder steps of those renders (default: the decoder's, 50 for Kandinsky).")
]
DeviceOpt = Annotated[str, typer.Option(help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")]
DtypeOpt = Annotated[
    str, typer.Option(help="auto (float32 on CPU, bfloat16/float16 on CUDA), float32, float16 or bfloat16.")
]


def _seed_in_range(context: click.Context, parameter: click.Parameter, value: int | None) -> int | None:
    """A seed past 64 bits, refused at its option (a random generator takes no more); below 0 the request says."""
    if value is not None and value > MAX_SEED:
        check_seeds(f"--{parameter.name}", [value])
    return value


def seed_option(purpose: str) -> OptionInfo:
    """`--seed`, bounded to 64 bits on every command."""
    return typer.Option(help=purpose, callback=_seed_in_range)


SeedOpt = Annotated[int, seed_option("Seed of every random draw: the same seed gives the same concept.")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Run folder to write (default: runs/<token>).")]


def force_option(replaces: str) -> OptionInfo:
    """`--force`, with help that says what it replaces."""
    return typer.Option("--force", help=f"Replace {replaces}.")


ForceRunOpt = Annotated[bool, force_option("an earlier run in --out (its concept, log, checkpoints and images)")]
ForceJobsOpt = Annotated[
    bool, force_option("the outputs of jobs whose options or inputs changed since they ran (run them again)")
]
TokenOpt = Annotated[
    str | None, typer.Option(help="Placeholder token to learn (default: <new-CATEGORY> or <WORD-WORD>).")
]
InitOpt = Annotated[
    str | None,
    typer.Option("--init", help="Word the token starts from (default: the category / first word)."),
]
StepsOpt = Annotated[int, typer.Option(help="Optimization steps.")]
LearningRateOpt = Annotated[
    float | None,
    typer.Option("--lr", help="AdamW learning rate (default: the backend's; 1e-4 for Kandinsky)."),
]
EveryOpt = Annotated[int, typer.Option(help="Write a checkpoint concept every N steps.")]
PriorStepsOpt = Annotated[int, typer.Option(help="Prior sampling steps per training step.")]
PriorGuidanceOpt = Annotated[float, typer.Option(help="Classifier-free guidance of the prior.")]
PadPromptsOpt = Annotated[
    bool | None,
    typer.Option(
        "--pad-prompts/--no-pad-prompts",
        help="Give the prior every prompt at the full 77 tokens (one shape for every template; same result). "
        "Default: on CUDA and with --compile, off on a CPU (where it is several times the work).",
        show_default=False,
    ),
]
CompileOpt = Annotated[
    bool,
    typer.Option(
        "--compile",
        help="Compile the training step once with torch.compile (CUDA graphs on a GPU); pads the prompts. "
        "The first step takes minutes; meant for long runs on a GPU.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
PlainOpt = Annotated[
    bool,
    typer.Option(
        "--plain", help="Print tables as tab-separated values (a header row, then one line per row; no markup)."
    ),
]
ImagesOpt = Annotated[
    bool, typer.Option("--images/--no-images", help="Render the concept at every checkpoint (loads the decoder).")
]
TemplatesOpt = Annotated[
    str,
    typer.Option(
        "--templates",
        help="Training prompts: official (the official code's lists: 3 standard prompts x3 and 9 edits, with "
        "a/the/my) or textual-inversion (12 'a photo of a {}'-style prompts).",
    ),
]
ConstraintEncoderOpt = Annotated[
    str | None,
    typer.Option(
        help="What embeds the constraint prompts: mclip (the Kandinsky 2.1 decoder's M-CLIP, as the official code) or "
        "prior (the prior's CLIP text embeds). Default: mclip on kandinsky-2.1, prior on kandinsky-2.2 and tiny.",
        show_default=False,
    ),
]
ImageSeedsOpt = Annotated[str, typer.Option(help="Seeds of the checkpoint images, comma-separated.")]
OffloadOpt = Annotated[
    bool | None,
    typer.Option(
        "--offload/--no-offload",
        help="Keep only the model at work (prior, decoder or oracle) on the GPU; default: only when they would "
        "not all fit. --no-offload keeps everything resident.",
        show_default=False,
    ),
]
ResumeOpt = Annotated[
    Path | None,
    typer.Option(
        "--resume",
        help="Continue the interrupted run in this folder, with its own settings (only --device, --dtype and "
        "--offload may be given).",
    ),
]


def ray_option(purpose: str) -> OptionInfo:
    """`--ray [ADDRESS]` (`expand_ray_flag` gives it `local` when alone)."""
    return typer.Option(
        "--ray",
        metavar="[ADDRESS]",
        help=f"{purpose}: alone, on a local Ray started for the run; with an address, on that cluster "
        "(ray://host:10001, host:6379 or auto). Needs pip install 'conceptlab\\[ray]'.",
    )


RayOpt = Annotated[str | None, ray_option("Run the jobs as Ray tasks")]
ProtocolRayOpt = Annotated[str | None, ray_option("With --protocol: train its concepts as Ray tasks")]
MaxParallelOpt = Annotated[
    int | None, typer.Option(help="With --ray: at most this many jobs at once (default: what the cluster fits).")
]


def ray_address(ray: str | None) -> str | None:
    """The cluster address `--ray` names; None for a local Ray (`--ray` alone) or no Ray."""
    return None if ray in (None, "local") else ray


def option_name(parameter: click.Parameter) -> str:
    """A parameter's name as a plan and a request field say it: `--image-seeds` -> image_seeds, `-n` -> n."""
    if parameter.param_type_name == "argument":
        return parameter.name or ""
    long = [opt for opt in parameter.opts if opt.startswith("--")] or parameter.opts
    return long[0].lstrip("-").replace("-", "_")


def given_options(context: click.Context) -> dict[str, Any]:
    """The command's parameters as parsed, by option name."""
    return {option_name(parameter): context.params[parameter.name] for parameter in context.command.params}


def option_values(
    cls: type, context: click.Context, names: Iterable[str] | None = None, read: Iterable[str] = ()
) -> dict[str, Any]:
    """Field name -> value for the fields `names` of `cls` (default: all) that the command's options set, by
    option name (the one
    schema of `conceptlab.engine.options`): a comma-separated value is read as its field's kind (`--neg cat,dog`
    -> ("cat", "dog")), and such an option left out (None) leaves its field to the default. Options named in
    `read` are left to the command, which reads them itself."""
    kinds = option_kinds(cls, names)
    values = {}
    for name, value in given_options(context).items():
        if name in read:
            continue
        kind = kinds.get(name)
        parse = LIST_PARSERS.get(kind) if isinstance(kind, str) else None
        if parse is not None and value is None:
            continue
        values[name] = parse(f"--{name.replace('_', '-')}", value) if parse and isinstance(value, str) else value
    return request_values(cls, values, names)


def request(cls: type[Request], context: click.Context, **parsed: Any) -> Request:
    """The request `cls` with every field the command's options set, then `parsed` (values the command reads
    itself). Every option must set a field: an option and a field that drifted apart fail here, not silently."""
    unknown = set(given_options(context)) - set(option_kinds(cls)) - set(parsed)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field for the option(s) {', '.join(sorted(unknown))}.")
    return cls(**option_values(cls, context, read=parsed) | parsed)


def model_choice(context: click.Context, default: str | None) -> ModelChoice:
    """The command's `--model/--backend/--revision/--decoder/--device/--dtype`; `--model` left out is `default`
    (None: the model its concepts were made with)."""
    choice = ModelChoice(**option_values(ModelChoice, context))
    return dataclasses.replace(choice, model=default if choice.model is None else choice.model)
