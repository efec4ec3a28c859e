"""`conceptlab convert`: turn an official-code or diffusers `.bin` embedding into a safe concept file.

conceptlab convert learned_embeds.bin --model kandinsky-2.1 --out new-pet.safetensors
conceptlab convert 2500_step_embeds.bin --token "<new-pet>" --model kandinsky-2.1 --out new-pet.safetensors
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from conceptlab.cli import options
from conceptlab.cli.output import stdout
from conceptlab.engine.concept.convert import ConvertRequest, convert

CONVERT_EXAMPLES = """
[bold]Examples[/]

  conceptlab convert learned_embeds.bin --model kandinsky-2.1 --out new-pet.safetensors

  conceptlab convert 2500_step_embeds.bin --token "<new-pet>" --model kandinsky-2.1 --out new-pet.safetensors

Reads {'t2': {token: tensor}} (official ConceptLab code) or {token: tensor} (diffusers textual inversion)
with torch.load(weights_only=True): tensors only, never arbitrary objects.
"""


def convert_command(
    context: typer.Context,
    source: Annotated[Path, typer.Argument(help="The .bin file saved by the official code or diffusers.")],
    model: options.TrainedWithModelOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="The concept .safetensors file to write.")],
    token: Annotated[str | None, typer.Option(help="Which token to take (default: the only one).")] = None,
    backend: options.BackendOpt = None,
    force: Annotated[bool, options.force_option("an existing --out file")] = False,
) -> None:
    """Convert an official-code `.bin` embedding into a concept file with metadata."""
    request = options.request(ConvertRequest, context)
    concept = convert(request)
    stdout.print(
        f"[bold green]Converted[/] {escape(concept.token)} (width {concept.embedding_dim}, "
        f"{escape(concept.metadata['backend'])}) to {escape(str(request.out))}",
        highlight=False,
        soft_wrap=True,
    )
