"""`conceptlab evaluate` (alias `eval`): CLIP metrics for concepts, folders of images and baselines.

conceptlab evaluate runs/new-pet/new-pet.safetensors --baseline kandinsky-neg --baseline sd-neg
conceptlab eval --images renders/ --category pet --neg cat,dog --json
conceptlab eval --protocol paper --model kandinsky-2.1 --out eval/paper
conceptlab eval --protocol creative --quick --model tiny --out eval/creative
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.table import Table

from conceptlab.cli import options
from conceptlab.cli.output import print_json, show_table, shown, stderr, stdout
from conceptlab.cli.parsing import number_list, word_list
from conceptlab.cli.progress import task_progress
from conceptlab.engine.errors import UsageError
from conceptlab.engine.evaluation.evaluate import EvaluationRow, results_json
from conceptlab.engine.evaluation.metrics import LOWER_IS_BETTER, METRIC_NAMES
from conceptlab.engine.evaluation.protocols.request import ProtocolRequest, evaluate_protocol
from conceptlab.engine.evaluation.protocols.runner import ProtocolResult
from conceptlab.engine.evaluation.request import EvaluateRequest, evaluate

EVALUATE_EXAMPLES = """
[bold]Examples[/]

  conceptlab evaluate runs/new-pet/new-pet.safetensors --baseline kandinsky-neg --baseline sd-neg

  conceptlab eval --images renders/pets --category pet --neg cat,dog --csv pets.csv --plot pets.png

  conceptlab eval child.safetensors --images child/ --parent-images a/ --parent-images b/ --weights 0.5,0.5

  conceptlab eval --protocol paper --model kandinsky-2.1 --out eval/paper      [dim]# the paper's table[/]

  conceptlab eval --protocol paper --quick --model tiny --out eval/quick      [dim]# offline, in seconds[/]

  conceptlab eval --protocol paper --out eval/paper --ray ray://head:10001    [dim]# trains the 75 on a cluster[/]

  conceptlab eval --protocol creative --quick --model tiny --out eval/creative  [dim]# the follow-up's table[/]

  conceptlab eval --images renders/pets --category pet --judge blip2 --plot pets.pdf   [dim]# validity too[/]

Rows are concepts, folders and baselines; columns are each metric's mean ± std over images (n).
"""


def _cell(row: EvaluationRow, metric: str) -> str:
    summary = row.metrics.metrics.get(metric)
    if not summary or not summary.n:
        return "—"
    if math.isnan(summary.std):
        return f"{summary.mean:.3f}"
    return f"{summary.mean:.3f}±{summary.std:.3f}"


METRIC_COLUMN_WIDTH = 15
NAME_COLUMNS_WIDTH = 40


def print_table(rows: list[EvaluationRow], clip_name: str, judge: dict | None = None, plain: bool = False) -> None:
    """The rows with every metric they have: in as many tables side by side as a terminal's width needs; in one
    table at its full width where stdout is a pipe or a file, or as TSV with `plain`."""
    metrics = [metric for metric in METRIC_NAMES if any(metric in row.metrics.metrics for row in rows)]
    judged = f", judge {judge['name']}" if judge else ""
    if not plain:  # TSV is the table alone
        stdout.print(
            f"CLIP metrics ({clip_name}{judged}): mean ± std over n images (vendi, variance: of the whole set)",
            highlight=False,
            markup=False,
        )
    fits = stdout.is_terminal and not plain  # a pipe, a file or TSV take every column at once
    per_table = max(1, (stdout.width - NAME_COLUMNS_WIDTH) // METRIC_COLUMN_WIDTH) if fits else max(1, len(metrics))
    for start in range(0, len(metrics), per_table):
        _print_metrics_table(rows, metrics[start : start + per_table], start == 0, plain)


def _print_metrics_table(rows: list[EvaluationRow], metrics: list[str], with_count: bool, plain: bool) -> None:
    table = Table()
    for column in ("row", "category"):
        table.add_column(column, style="bold" if column == "row" else None, overflow="fold", min_width=8)
    for metric in metrics:
        table.add_column(metric + (" ↓" if metric in LOWER_IS_BETTER else " ↑"), justify="right", no_wrap=True)
    if with_count:
        table.add_column("n", justify="right", no_wrap=True)
    for row in rows:
        cells = [_cell(row, metric) for metric in metrics]
        cells += [str(row.metrics.metrics["positive"].n)] if with_count else []
        table.add_row(shown(row.metrics.name), shown(row.metrics.category or ""), *cells)
    show_table(table, plain)


def print_written(paths: tuple[Path, ...]) -> None:
    for path in paths:
        stderr.print(f"wrote {path}", highlight=False, markup=False)


PROTOCOL_FIXES = {
    "category": "--category",
    "neg": "--neg",
    "vocab": "--vocab",
    "count": "-n",
    "parent_images": "--parent-images",
    "weights": "--weights",
}
"""Options the protocol decides itself (its categories, negative pairs, vocabularies and image counts)."""


def check_protocol_options(context: typer.Context, protocol: str) -> None:
    """Refuse, rather than ignore, an option that the protocol does not take."""
    given = [
        flag
        for name, flag in PROTOCOL_FIXES.items()
        if (source := context.get_parameter_source(name)) is not None and source.name == "COMMANDLINE"
    ]
    if given:
        raise UsageError(f"--protocol {protocol} sets its own {', '.join(given)}; drop them (see README: evaluate).")


def print_protocol_result(result: ProtocolResult, as_json: bool, plain: bool) -> None:
    """The protocol's summary (the creative one's with its judge), then what it trained and wrote."""
    print_written(result.written)
    if as_json:
        print_json(results_json(result.summary, result.clip, result.judge))
        return
    print_table(result.summary, result.clip, result.judge, plain)
    stdout.print(f"trained {result.trained} concept(s), reused {result.reused}", highlight=False)
    for path in result.files.values():
        stdout.print(f"  {path}", highlight=False, markup=False)


def evaluate_command(
    context: typer.Context,
    concepts: Annotated[
        list[Path] | None, typer.Argument(help="Concept .safetensors files (their images are rendered).")
    ] = None,
    images: Annotated[
        list[Path] | None,
        typer.Option("--images", help="Folder of images to score instead of rendering (repeatable)."),
    ] = None,
    category: Annotated[str | None, typer.Option(help="Category to measure against (default: the concept's).")] = None,
    neg: Annotated[
        str | None, typer.Option("--neg", help="Comma-separated negatives (default: the concept's, adaptive too).")
    ] = None,
    vocab: Annotated[
        Path | None, typer.Option(help="Known members for novelty, one a line (default: built-in list).")
    ] = None,
    parent_images: Annotated[
        list[Path] | None, typer.Option("--parent-images", help="Folder of a parent's images (repeatable).")
    ] = None,
    weights: Annotated[
        str | None, typer.Option(help="Comma-separated weight per --parent-images (default: recorded or equal).")
    ] = None,
    baseline: Annotated[
        list[str] | None,
        typer.Option("--baseline", help="Also render and score a baseline: kandinsky-neg or sd-neg (repeatable)."),
    ] = None,
    sd_model: Annotated[
        str | None,
        typer.Option(
            help="Model of the sd-neg baseline: SD hub id or folder (default stabilityai/stable-diffusion-2-1)."
        ),
    ] = None,
    count: Annotated[
        int, typer.Option("-n", help="Images to render per concept and per baseline row.")
    ] = EvaluateRequest.count,
    seed: Annotated[
        int, options.seed_option("Seed of the first rendered image; image i uses seed + i.")
    ] = EvaluateRequest.seed,
    size: Annotated[int | None, typer.Option(help="Side of rendered images in pixels (default: the model's).")] = None,
    steps: Annotated[
        int | None, typer.Option(help="Denoising steps of rendered images (default: the model's).")
    ] = None,
    model: options.ConceptModelOpt = None,
    backend: options.BackendOpt = None,
    revision: options.RevisionOpt = None,
    decoder: options.DecoderOpt = None,
    decoder_revision: options.DecoderRevisionOpt = None,
    clip: options.ClipOpt = None,
    clip_revision: options.ClipRevisionOpt = None,
    judge: Annotated[
        str | None,
        typer.Option(
            help="Also ask an oracle (blip2, clip-zeroshot, ...) 'Is this a {category}?' and 'What kind of "
            "{category} is this?': validity and vqa-novelty."
        ),
    ] = None,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="Run a whole protocol instead: 'paper' (75 concepts and both baselines) or 'creative' "
            "(4 categories × concept, plain, kandinsky-neg, sd-neg, 100 images each)."
        ),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="With --protocol: one category, 8 images, few steps (a smoke run).")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="With --protocol: folder of the run (resumable).")
    ] = None,
    ray: options.ProtocolRayOpt = None,
    max_parallel: options.MaxParallelOpt = None,
    device: options.DeviceOpt = "auto",
    dtype: options.DtypeOpt = "auto",
    as_json: options.JsonOpt = False,
    plain: options.PlainOpt = False,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Also write the table as CSV to this file.")] = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="Also write the figure (bars per metric, error bars from std): .png, .svg or .pdf."),
    ] = None,
    force: Annotated[
        bool, options.force_option("existing --csv and --plot files (with --protocol: also what other settings made)")
    ] = False,
) -> None:
    """Score concepts, image folders and baselines: CLIP similarity, novelty, typicality, diversity, Vendi, variance,
    a judge's validity and vqa-novelty, cost, parents."""
    concepts, folders, baselines = concepts or [], images or [], baseline or []
    if protocol is not None:
        if concepts or folders:
            raise UsageError(f"--protocol {protocol} trains its own concepts; drop the concept files and --images.")
        check_protocol_options(context, protocol)
        request = ProtocolRequest(
            protocol=protocol,
            out=out,
            quick=quick,
            baselines=tuple(baselines),
            sd_model=sd_model,
            seed=seed,
            size=size,
            steps=steps,
            judge=judge,
            model=model,
            backend=backend,
            revision=revision,
            decoder=decoder,
            decoder_revision=decoder_revision,
            device=device,
            dtype=dtype,
            clip=clip,
            clip_revision=clip_revision,
            ray=ray is not None,
            ray_address=options.ray_address(ray),
            max_parallel=max_parallel,
            csv=csv_path,
            plot=plot,
            force=force,
        )
        with task_progress() as on_task:
            ran = evaluate_protocol(request, on_task)
        return print_protocol_result(ran, as_json, plain)
    if quick or out or ray or max_parallel:
        raise UsageError(
            "--quick, --out, --ray and --max-parallel belong to --protocol paper or creative; add one or drop them."
        )
    request = evaluate_request(context)
    with task_progress() as on_task:
        result = evaluate(request, on_task=on_task)
    for note in result.notes:
        stderr.print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
    print_written(result.written)
    if as_json:
        print_json(results_json(result.rows, result.clip, result.judge))
    else:
        print_table(list(result.rows), result.clip, result.judge, plain)


def evaluate_request(context: click.Context) -> EvaluateRequest:
    """What `conceptlab evaluate` (without --protocol) builds from its parsed options (the studio builds its
    requests through this too)."""
    params = context.params
    return EvaluateRequest(
        concepts=tuple(params["concepts"] or ()),
        images=tuple(params["images"] or ()),
        category=params["category"],
        negatives=word_list(params["neg"]),
        vocab=params["vocab"],
        parent_images=tuple(params["parent_images"] or ()),
        parent_weights=number_list("--weights", params["weights"]),
        baselines=tuple(params["baseline"] or ()),
        sd_model=params["sd_model"],
        count=params["count"],
        seed=params["seed"],
        size=params["size"],
        steps=params["steps"],
        model=params["model"],
        backend=params["backend"],
        revision=params["revision"],
        device=params["device"],
        dtype=params["dtype"],
        decoder=params["decoder"],
        decoder_revision=params["decoder_revision"],
        clip=params["clip"],
        judge=params["judge"],
        clip_revision=params["clip_revision"],
        csv=params["csv_path"],
        plot=params["plot"],
        force=params["force"],
    )
