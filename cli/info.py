"""`conceptlab info`: everything a concept file records, readable.

conceptlab info runs/new-pet/new-pet.safetensors
conceptlab info runs/new-pet/new-pet.safetensors --json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from conceptlab.cli import options
from conceptlab.cli.output import print_json, show_table
from conceptlab.engine.concept.file import load_concept
from conceptlab.engine.io.printable import printable

INFO_EXAMPLES = """
[bold]Examples[/]

  conceptlab info runs/new-pet/new-pet.safetensors

  conceptlab info runs/new-pet/new-pet.safetensors --json | jq .negatives
"""

FORMAT_KEY = "conceptlab.format"
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Concept", ("token", "kind", "category", "initializer", "sha256", "created", "conceptlab_version", FORMAT_KEY)),
    ("Constraints", ("positives", "weights", "negatives", "final_similarities")),
    (
        "Model",
        (
            "backend",
            "model",
            "model_revision",
            "decoder",
            "decoder_revision",
            "oracle_model",
            "oracle_revision",
            "embedding_dim",
            "text_encoder_fingerprint",
            "device",
            "dtype",
        ),
    ),
    ("Training", ("seed", "steps", "learning_rate", "prior_steps", "prior_guidance", "checkpoint_step")),
    ("Lineage", ("parents", "lineage")),
)


def _format(key: str, value: Any) -> str:
    if key == "negatives" and isinstance(value, list):
        return ", ".join(f"{n['word']} (step {n['step']})" for n in value) or "none"
    if key == "parents" and isinstance(value, list) and value:
        return ", ".join(f"{p['token']} ({p['sha256'][:10]}, weight {p['weight']:g})" for p in value)
    if key == "lineage" and isinstance(value, list) and value:
        return f"{len(value)} parent records; see conceptlab lineage"
    if key == "final_similarities" and isinstance(value, dict):
        return "  ".join(
            f"{sign}{word} {sim:.3f}"
            for group, sign in (("positive", "+"), ("negative", "−"))
            for word, sim in value.get(group, {}).items()
        )
    if isinstance(value, list) and value and all(isinstance(item, str | int | float) for item in value):
        return ", ".join(f"{item:.3g}" if isinstance(item, float) else str(item) for item in value)
    if isinstance(value, list | dict):
        return json.dumps(value) if value else "none"
    return "—" if value is None else str(value)


def info_command(
    concept: Annotated[Path, typer.Argument(help="A concept .safetensors file.")],
    as_json: options.JsonOpt = False,
) -> None:
    """Show everything a concept file records."""
    loaded = load_concept(concept)
    metadata = {**loaded.metadata, "path": str(concept)}
    if as_json:
        print_json(metadata)
        return
    title = Text(printable(f"{loaded.token}  ({concept})"))
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column(overflow="fold")
    shown = {"config", "path"}
    for section, keys in SECTIONS:
        _add_section(table, section, [(key, metadata[key]) for key in keys if key in metadata])
        shown.update(keys)
    _add_section(table, "Other", [(key, metadata[key]) for key in sorted(set(metadata) - shown)])
    config = metadata.get("config") if isinstance(metadata.get("config"), dict) else {}
    _add_section(table, "Config (as run)", [(key, value) for key, value in config.items() if key not in metadata])
    show_table(table)


def _add_section(table: Table, section: str, rows: list[tuple[str, Any]]) -> None:
    """Values are shown as text, never read as rich markup (a category may be `[bold]x`) nor obeyed (`printable`)."""
    if not rows:
        return
    table.add_section()
    table.add_row(Text(section, style="dim"), "")
    for key, value in rows:
        table.add_row(Text(printable(key)), Text(printable(_format(key, value))))
