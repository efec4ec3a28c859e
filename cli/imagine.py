"""`conceptlab imagine`: creative images without training; an oracle's answers grow each image's negative prompt.

conceptlab imagine --category pet --model tiny -n 4
conceptlab imagine --category pet --model sd3.5 --oracle vilt --ask-until 0.5
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from conceptlab.cli import options
from conceptlab.cli.output import description_column, progress_bar, shown, stdout
from conceptlab.cli.parsing import integer_list
from conceptlab.engine.imagine import ImagineProgress, ImagineRequest, imagine
from conceptlab.engine.imagine.pick import PickRequest, pick
from conceptlab.engine.imagine.request import DEFAULT_PROMPT, DEFAULT_QUESTION
from conceptlab.engine.io.printable import printable

IMAGINE_EXAMPLES = """
[bold]Examples[/]

  conceptlab imagine --category pet --model tiny -n 4   [dim]# offline, nothing downloaded[/]

  conceptlab imagine --category pet --model sd3.5 -n 8 --preset paper   [dim]# the paper's setting[/]

  conceptlab imagine --category pet --model sd3.5 --question "What is the main object?" --question "What {} is it?"

  conceptlab imagine --category "musical instrument" --model sdxl --neg guitar --ask-until 0.3

  conceptlab pick runs/imagine-pet --seeds 3,5 --out runs/chosen && conceptlab evolve runs/chosen   [dim]# a token[/]

Writes OUT/<seed>.png per image, OUT/imagine-grid.png and OUT/imagine.json (per image: each negative with the
step from which it acts, the oracle's raw answers, seconds denoising and asking). A rerun skips finished images;
--force redoes them.
"""


def imagine_command(
    context: typer.Context,
    category: Annotated[str, typer.Option(help="What to imagine a new member of (pet, plant, ...).")],
    n: Annotated[int, typer.Option("-n", help="Number of images (seeds SEED, SEED+1, ...).")] = ImagineRequest.n,
    seed: Annotated[int, options.seed_option("Seed of the first image; the same seed gives the same image.")] = 0,
    prompt: Annotated[str, typer.Option(help="Prompt; {} is the category.")] = DEFAULT_PROMPT,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="kandinsky-2.2, sdxl, sd3.5, flux.1-dev, flux.1-schnell, tiny (Kandinsky), tiny-sdxl, tiny-sd3, "
            "tiny-flux, an id or folder.",
        ),
    ] = ImagineRequest.model,
    backend: Annotated[
        str | None, typer.Option(help="Family of a hub id given to --model (sdxl, sd3.5, flux.1-dev, kandinsky-2.2).")
    ] = None,
    oracle: Annotated[
        str | None, typer.Option(help="vilt (default), blip2, qwen2.5-vl, clip-zeroshot (tiny's default).")
    ] = None,
    oracle_model: Annotated[str | None, typer.Option(help="The oracle's own weights (hub id or folder).")] = None,
    oracle_revision: options.OracleRevisionOpt = None,
    question: Annotated[
        list[str] | None,
        typer.Option(help=f"What the oracle is asked; repeat for several; {{}} is the category. [{DEFAULT_QUESTION}]"),
    ] = None,
    top_k: Annotated[int, typer.Option(help="Take each question's k best answers (vilt).")] = 1,
    main_object: Annotated[
        str | None, typer.Option(help="Append this to every answer before it joins the negatives (cat -> cat pet).")
    ] = None,
    clear_at_stop: Annotated[
        bool, typer.Option(help="After the window, drop the oracle's negatives (--preset paper: every negative).")
    ] = False,
    preset: Annotated[
        str | None,
        typer.Option(help="paper: the official code's settings where they differ from ours (sd3.5, FLUX)."),
    ] = None,
    ask_from: Annotated[float, typer.Option(help="Start asking at this fraction of the steps.")] = 0.0,
    ask_until: Annotated[
        float | None, typer.Option(help="Stop asking at this fraction of the steps. [0.5; --preset paper: 1]")
    ] = None,
    ask_every: Annotated[int, typer.Option(help="Ask every this many steps inside the window.")] = 1,
    neg: Annotated[str | None, typer.Option(help="Negatives from the start, comma-separated (cat,dog).")] = None,
    max_negatives: Annotated[int | None, typer.Option(help="At most this many negatives (default: no cap).")] = None,
    steps: Annotated[int | None, typer.Option(help="Denoising steps (default: the model's; sd3.5: 28).")] = None,
    guidance: Annotated[
        float | None, typer.Option(help="Classifier-free guidance (FLUX: true CFG's scale; default: the model's).")
    ] = None,
    size: Annotated[int | None, typer.Option(help="Image size in pixels (default: the model's).")] = None,
    preview: Annotated[
        str | None,
        typer.Option(
            help="Decode the oracle's previews with a tiny autoencoder (tiny), the model's (full), or as the official "
            "code: latents − prediction, full VAE, full size (official). [tiny; --preset paper: official]"
        ),
    ] = None,
    seeds: Annotated[str | None, typer.Option(help="Exactly these seeds (3,5,9) instead of -n and --seed.")] = None,
    device: options.DeviceOpt = "auto",
    dtype: options.DtypeOpt = "auto",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder (default: runs/imagine-CATEGORY).")] = None,
    force: Annotated[bool, options.force_option("the images and record of an earlier imagine run in --out")] = False,
) -> None:
    """Creative images without training: VLM-guided adaptive negative prompting."""
    request = imagine_request(context)
    bar = progress_bar(
        description_column(),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[negatives]}"),
        TimeElapsedColumn(),
    )
    tasks: dict[int, object] = {}

    def on_progress(event: ImagineProgress) -> None:
        if event.image not in tasks:
            bar.start()
            label = f"seed {event.seed}" + (" (done before)" if event.skipped else "")
            tasks[event.image] = bar.add_task(label, total=event.steps, negatives="")
        task = tasks[event.image]
        bar.update(task, completed=event.steps if event.skipped else event.step)
        for word in event.added:
            bar.console.print(
                f"seed {event.seed}, step {event.step}: new negative [bold]{shown(word)}[/]", highlight=False
            )

    with bar:
        result = imagine(request, on_progress)
    stdout.print(
        f"[bold green]Imagined[/] {shown(repr(request.filled_prompt()))} in {shown(result.out)}", highlight=False
    )
    for image in result.images:
        words = ", ".join(str(entry["word"]) for entry in image.negatives) or "no negatives"
        stdout.print(f"  {shown(image.path)}  [dim]{shown(words)}[/]", highlight=False)
    print(printable(result.grid))
    print(printable(result.record))


def imagine_request(context: click.Context) -> ImagineRequest:
    """What `conceptlab imagine` builds from its parsed options (the studio builds its requests through this too)."""
    seeds, question = context.params["seeds"], context.params["question"]
    return options.request(
        ImagineRequest,
        context,
        seeds=integer_list("--seeds", seeds) if seeds else (),
        question=tuple(question) if question else ImagineRequest.question,
    )


PICK_EXAMPLES = """
[bold]Examples[/]

  conceptlab pick runs/imagine-pet --seeds 3,5 --out runs/chosen

  conceptlab evolve runs/chosen --model tiny   [dim]# a reusable token from the picked images[/]
"""


def pick_command(
    context: typer.Context,
    run: Annotated[Path, typer.Argument(help="The folder an imagine run wrote.")],
    seeds: Annotated[str, typer.Option(help="Seeds of the images to pick, comma-separated (3,5).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New folder for the picked images.")],
    force: Annotated[bool, options.force_option("picked images already in --out")] = False,
) -> None:
    """Copy chosen images of an imagine run into a folder that evolve takes as a parent."""
    for path in pick(pick_request(context)):
        print(printable(path))


def pick_request(context: click.Context) -> PickRequest:
    """What `conceptlab pick` builds from its parsed options."""
    return options.request(PickRequest, context)
