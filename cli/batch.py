"""`conceptlab batch PLAN.toml [--ray [ADDRESS]]`: many jobs, here one after another or on Ray."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn
from rich.table import Table

from conceptlab.cli import options
from conceptlab.cli.output import description_column, progress_bar, show_table, shown, stderr
from conceptlab.engine.batch.runner import BatchEvent, BatchRequest, BatchResult, run_batch
from conceptlab.engine.io.printable import printable

BATCH_EXAMPLES = """
[bold]Examples[/]

  conceptlab batch pets.toml                          [dim]# one job after another, models loaded once[/]

  conceptlab batch pets.toml --ray                    [dim]# a local Ray, one task per job[/]

  conceptlab batch pets.toml --ray ray://head:10001 --max-parallel 8

[bold]A plan[/] (TOML; paths are relative to the plan file):

  \\[plan]
  out = "runs/pets"
  model = "tiny"                 [dim]# defaults for every job that takes them[/]
  steps = 200

  \\[\\[job]]
  name = "a"
  run = "create"                 [dim]# create, mix, evolve, sample or evaluate[/]
  category = "pet"
  neg = ["cat", "dog"]

  \\[\\[job]]
  name = "child"
  run = "evolve"
  parents = ["a", "b"]           [dim]# job names (it waits for them) or concept files[/]

Options are the commands' own, with _ for -. Rerunning a plan reuses every finished job; a failed job is tried once
more and reported, and what waits for it is reported as blocked (exit code 1).
"""

RAY_ADDRESS = re.compile(r"^(local|auto|[a-z]+://\S+|[\w.-]+:\d+)$")
"""What `--ray` takes as its ADDRESS; anything else after it (the plan, another option) leaves it alone."""

STATUS_STYLE = {"done": "green", "reused": "cyan", "failed": "red", "blocked": "yellow"}


def expand_ray_flag(argv: list[str]) -> list[str]:
    """`--ray` without an address means a local Ray: give it the value `local` (Typer has no optional values)."""
    expanded = []
    for index, token in enumerate(argv):
        expanded.append(token)
        following = argv[index + 1] if index + 1 < len(argv) else ""
        if token == "--ray" and not RAY_ADDRESS.match(following):
            expanded.append("local")
    return expanded


@contextmanager
def batch_progress(total: int) -> Iterator[Callable[[BatchEvent], None]]:
    """A bar over the plan's jobs and one for the running job's steps; a line for each job that ends."""
    columns = (description_column(), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    progress = progress_bar(*columns)
    plan_task = progress.add_task("jobs", total=total)
    job_tasks: dict[str, int] = {}

    def on_event(event: BatchEvent) -> None:
        if event.what == "plan":
            progress.update(plan_task, total=event.total)
        elif event.what == "start":
            job_tasks.setdefault(event.job, progress.add_task(printable(event.job), total=None))
        elif event.what == "progress" and event.job in job_tasks:
            progress.update(job_tasks[event.job], completed=event.done, total=event.total)
        elif event.what == "retry":
            progress.console.print(f"[yellow]retry[/] {shown(event.job)}: {shown(event.message)}", highlight=False)
        elif event.what in STATUS_STYLE:
            if event.job in job_tasks:
                progress.remove_task(job_tasks.pop(event.job))
            progress.advance(plan_task)
            style = STATUS_STYLE[event.what]
            line = f"[{style}]{event.what}[/] {shown(event.job)}: {shown(event.message)}"
            progress.console.print(line, highlight=False)

    with progress:
        yield on_event


def print_summary(result: BatchResult) -> None:
    table = Table(title=f"{result.out}  ({result.mode}, {result.seconds:.1f} s)", title_justify="left")
    for column in ("job", "status", "tries", "seconds", "where", "result"):
        table.add_column(column, overflow="fold", justify="right" if column in ("tries", "seconds") else "left")
    for record in result.records.values():
        style = STATUS_STYLE[record.status]
        table.add_row(
            shown(record.name),
            f"[{style}]{record.status}[/]",
            str(record.attempts),
            f"{record.seconds:.1f}",
            shown(record.where),
            shown(record.error or record.concept or record.summary),
        )
    show_table(table)


def batch_command(
    context: typer.Context,
    plan_path: Annotated[Path, typer.Argument(metavar="PLAN", help="The plan: a TOML file of \\[\\[job]] tables.")],
    ray: options.RayOpt = None,
    max_parallel: options.MaxParallelOpt = None,
    gpus_per_job: Annotated[
        float | None, typer.Option(help="With --ray: GPUs per job (default: 1 where the cluster has GPUs, else 0).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default: the plan's out, else runs/plan).")
    ] = None,
    model: options.PlanModelOpt = None,
    force: options.ForceJobsOpt = False,
) -> int:
    """Run a plan of create, mix, evolve, sample and evaluate jobs in the order their dependencies allow."""
    if ray is None and (max_parallel is not None or gpus_per_job is not None):
        raise typer.BadParameter("--max-parallel and --gpus-per-job go with --ray; add --ray or drop them.")
    with batch_progress(0) as on_event:
        result = run_batch(options.request(BatchRequest, context), on_event)
    print_summary(result)
    if result.failed:
        stderr.print(f"[red]{len(result.failed)} job(s) did not finish:[/] {shown(', '.join(result.failed))}")
        return 1
    return 0
