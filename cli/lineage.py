"""`conceptlab lineage` and `conceptlab verify`: a concept's family tree, and whether its files are intact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.tree import Tree

from conceptlab.cli import options
from conceptlab.cli.output import print_json, shown, stdout
from conceptlab.engine.concept.file import load_concept
from conceptlab.engine.concept.lineage import (
    LineageNode,
    LineageRequest,
    check_ancestors,
    lineage,
    lineage_tree,
    recorded_paths,
)
from conceptlab.engine.errors import UsageError

LINEAGE_EXAMPLES = """
[bold]Examples[/]

  conceptlab lineage runs/child/child.safetensors

  conceptlab lineage runs/child/child.safetensors --dot tree.dot && dot -Tpng tree.dot -o tree.png
"""

VERIFY_EXAMPLES = """
[bold]Examples[/]

  conceptlab verify runs/child/child.safetensors

  conceptlab verify runs/child/child.safetensors --parents runs/
"""

STATUS_STYLE = {"present": "green", "changed": "bold red", "missing": "yellow"}


def _label(node: LineageNode) -> str:
    weight = f"  weight {node.weight:g}" if node.weight is not None else ""
    what = " ".join(part for part in (node.kind, node.category) if part)
    created = f"  [dim]{shown(node.created)}[/]" if node.created else ""
    return f"[bold]{shown(node.token)}[/]  {shown(what)}{weight}  [cyan]{shown(node.sha256[:12])}[/]{created}"


def _rich_tree(node: LineageNode, tree: Tree | None = None) -> Tree:
    branch = Tree(_label(node)) if tree is None else tree.add(_label(node))
    for parent in node.parents:
        _rich_tree(parent, branch)
    return branch


def lineage_command(
    concept: Annotated[Path, typer.Argument(help="A concept .safetensors file.")],
    as_json: options.JsonOpt = False,
    dot: Annotated[Path | None, typer.Option(help="Also write the tree as Graphviz text to this file.")] = None,
    force: Annotated[bool, options.force_option("an existing --dot file")] = False,
) -> None:
    """Show a concept's family tree, known from its own file (parent files are not needed)."""
    root = lineage(LineageRequest(concept, dot, force))
    if as_json:
        print_json(root.as_json())
        return
    stdout.print(_rich_tree(root))
    ancestors = len(root.walk()) - 1
    stdout.print(f"{ancestors} ancestor{'s' * (ancestors != 1)}" + (f"; Graphviz text in {dot}" if dot else ""))


def verify_command(
    concept: Annotated[Path, typer.Argument(help="A concept .safetensors file.")],
    parents: Annotated[
        Path | None, typer.Option(help="A folder to look for the recorded ancestors in (searched recursively).")
    ] = None,
) -> None:
    """Check a concept's own sha256 and, with --parents, which recorded ancestors are present and unchanged."""
    loaded = load_concept(concept)  # refuses a file whose embedding does not match its recorded sha256
    stdout.print(
        f"[green]ok[/] {shown(concept)}: embedding matches its sha256 {loaded.sha256[:12]}",
        highlight=False,
        soft_wrap=True,
    )
    if parents is None:
        return
    if not parents.is_dir():
        raise UsageError(f"--parents {parents} is not a folder; give the folder that holds the parent concepts.")
    checks = check_ancestors(lineage_tree(loaded.metadata), recorded_paths(loaded.metadata), parents)
    for check in checks:
        where = f"  {shown(check.path)}" if check.path else ""
        status = f"[{STATUS_STYLE[check.status]}]{check.status:<8}[/]"
        stdout.print(
            f"  {status} {shown(check.token)}  {shown(check.sha256[:12])}{where}",
            highlight=False,
            soft_wrap=True,
        )
    if any(check.status == "changed" for check in checks):
        raise typer.Exit(1)
