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
from conceptlab.engine.gallery.model import GalleryScan
from conceptlab.engine.gallery.request import GalleryRequest, gallery
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
    context: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Folder searched recursively for concept files and metrics JSON.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write index.html and its pictures to.")],
    force: Annotated[
        bool, options.force_option("an earlier gallery in --out (write into it even when it is not empty)")
    ] = False,
) -> None:
    """Write a static HTML gallery of the concepts under FOLDER."""
    request = options.request(GalleryRequest, context)
    with spinner(f"Reading concepts under {request.folder}…") as status:

        def on_read(scan: GalleryScan) -> None:
            _print_skipped(scan)
            status.update(f"Writing the gallery to {request.out}…")

        result = gallery(request, on_read)
    imagined = f", {len(result.imagine_runs)} imagine run(s)" if result.imagine_runs else ""
    stdout.print(
        f"wrote {result.index}: {len(result.scan.concepts)} concept(s), {result.evaluated} with metrics, "
        f"{len(result.scan.skipped)} skipped{imagined}",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )


def _print_skipped(scan: GalleryScan) -> None:
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
