"""`conceptlab breed SEEDS... --population 8 --generations 3`: evolve a population, keep the fittest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from conceptlab.cli import options
from conceptlab.cli.batch import STATUS_STYLE, batch_progress
from conceptlab.cli.output import show_table, shown, stderr, stdout
from conceptlab.engine.batch.breed import BREED_FILE, BreedRequest, Member, run_breed
from conceptlab.engine.batch.runner import BatchEvent

BREED_EXAMPLES = """
[bold]Examples[/]

  conceptlab breed runs/a/a.safetensors runs/b/b.safetensors runs/c/c.safetensors --population 3 --generations 2

  conceptlab breed seeds/*.safetensors --population 8 --generations 3 --steps 500 --ray

Each generation picks pairs of the population, evolves a child of each, scores every child with evaluate
(fitness = novelty + similarity to the category) and keeps the fittest. The whole run is a batch plan in --out:
rerunning the command reuses every finished child; breed.json lists each generation's population.
"""


def print_population(number: int, members: list[Member]) -> None:
    table = Table(title=f"generation {number}", title_justify="left")
    for column in ("member", "born", "parents", "novelty ↑", "positive ↑", "fitness ↑"):
        table.add_column(column, justify="right" if column[0] in "npf" and column != "parents" else "left")
    for member in members:
        table.add_row(
            shown(member.name),
            str(member.generation),
            shown(" × ".join(member.parents)) or "seed",
            f"{member.novelty:.3f}",
            f"{member.positive:.3f}",
            f"[bold]{member.fitness:.3f}[/]",
        )
    show_table(table)


def _first_report_only(on_event: Callable[[BatchEvent], None]) -> Callable[[BatchEvent], None]:
    """Each generation's plan holds the earlier generations' jobs: report each job once, not again as reused."""
    reported: set[str] = set()

    def forward(event: BatchEvent) -> None:
        if event.what == "reused" and event.job in reported:
            return
        if event.what in STATUS_STYLE:
            reported.add(event.job)
        on_event(event)

    return forward


def breed_command(
    context: typer.Context,
    seeds: Annotated[list[Path], typer.Argument(help="Seed concept files (two or more) of one category.")],
    population: Annotated[int, typer.Option(help="How many concepts each generation keeps.")] = 8,
    generations: Annotated[int, typer.Option(help="How many generations to breed.")] = 3,
    children: Annotated[
        int | None, typer.Option(help="Children per generation (default: as many as --population).")
    ] = None,
    category: Annotated[
        str | None, typer.Option(help="Category the fitness measures against (default: the seeds' own).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Training steps of each child (default: evolve's).")] = None,
    images_per_parent: Annotated[
        int | None, typer.Option(help="Images rendered of each parent (default: evolve's, 8).")
    ] = None,
    eval_images: Annotated[int, typer.Option("-n", help="Images of each child that evaluate scores.")] = 8,
    images: Annotated[bool, typer.Option("--images/--no-images", help="Render each child at its checkpoints.")] = True,
    seed: Annotated[int, options.seed_option("Seed of the pairing and of each child's training.")] = 0,
    image_size: options.ImageSizeOpt = None,
    image_steps: options.ImageStepsOpt = None,
    decoder: options.DecoderOpt = None,
    decoder_revision: options.DecoderRevisionOpt = None,
    clip: options.ClipOpt = None,
    clip_revision: options.ClipRevisionOpt = None,
    device: options.DeviceOpt = "auto",
    dtype: options.DtypeOpt = "auto",
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder of the run (resumable).")] = Path("runs/breed"),
    ray: options.RayOpt = None,
    max_parallel: options.MaxParallelOpt = None,
    force: options.ForceJobsOpt = False,
) -> None:
    """Breed a population of concepts over generations, keeping the most novel members of the category."""
    request = options.request(BreedRequest, context)
    with batch_progress(request.total_jobs) as on_event:
        result = run_breed(request, _first_report_only(on_event))
    for number, members in enumerate(result.populations):
        print_population(number, members)
    best = result.populations[-1][0]
    stdout.print(f"fittest: {shown(best.name)} ({shown(best.concept)}), fitness {best.fitness:.3f}", highlight=False)
    stderr.print(f"wrote {result.out / BREED_FILE}", highlight=False)
