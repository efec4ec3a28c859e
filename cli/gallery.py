"""`conceptlab gallery`: a static web page of every concept under a folder, with its family graph.

conceptlab gallery runs/ --out site/
conceptlab gallery runs/ --out site/ --force
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conceptlab.cli import options
from conceptlab.cli.output import spinner, stderr, stdout
from conceptlab.engine.errors import UsageError
from conceptlab.engine.gallery.imagine_runs import find_imagine_runs
from conceptlab.engine.gallery.scan import check_output_folder, find_concepts, write_gallery
from conceptlab.engine.io.printable import printable

GALLERY_EXAMPLES = """
[bold]Examples[/]

  conceptlab gallery runs/ --out site/            [dim]# then open site/index.html in a browser[/]

  conceptlab gallery runs/ --out site/ --force    [dim]# rebuild over an earlier gallery[/]

The page shows each concept's pictures, negatives (with the step and source), metrics (from evaluation JSON
files under DIR: conceptlab evaluate CONCEPT --json > DIR/metrics.json) and parents, under one family graph.
It needs no server and fetches nothing: it opens from file:// offline.
"""


def gallery_command(
    folder: Annotated[Path, typer.Argument(help="Folder searched recursively for concept files and metrics JSON.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write index.html and its pictures to.")],
    force: Annotated[
        bool, options.force_option("an earlier gallery in --out (write into it even when it is not empty)")
    ] = False,
) -> None:
    """Write a static HTML gallery of the concepts under FOLDER."""
    if not folder.exists():
        raise UsageError(f"{folder} does not exist; give the folder that holds your concepts (e.g. runs/).")
    check_output_folder(out, force)
    with spinner(f"Reading concepts under {folder}…"):
        scan = find_concepts(folder)
        imagine_runs = find_imagine_runs(folder)
    for skipped in scan.skipped:
        line = printable(f"skipped {skipped.path}: {skipped.reason}")
        stderr.print(line, highlight=False, soft_wrap=True, markup=False)
    if scan.unmatched_rows:
        unmatched = ", ".join(scan.unmatched_rows)
        stderr.print(
            printable(f"{len(scan.unmatched_rows)} metrics row(s) match no single concept here: {unmatched}"),
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    if not scan.concepts and not imagine_runs:
        raise UsageError(f"No concept files under {folder}; point at a folder of runs (e.g. runs/).")
    with spinner(f"Writing the gallery to {out}…"):
        index = write_gallery(scan.concepts, out, force, imagine_runs)
    evaluated = sum(concept.metrics is not None for concept in scan.concepts)
    stdout.print(
        f"wrote {index}: {len(scan.concepts)} concept(s), {evaluated} with metrics, {len(scan.skipped)} skipped"
        + (f", {len(imagine_runs)} imagine run(s)" if imagine_runs else ""),
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
