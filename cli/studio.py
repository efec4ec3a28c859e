"""`conceptlab studio`: the creative loop in a browser, on the same engine (a local Gradio app).

conceptlab studio --model tiny
conceptlab studio --root runs --port 7861
conceptlab studio --host 0.0.0.0 --auth-file ~/.studio-login
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from conceptlab.engine.errors import UsageError
from conceptlab.engine.studio.access import check_host, credentials

STUDIO_EXAMPLES = """
[bold]Examples[/]

  conceptlab studio --model tiny   [dim]# offline; open http://127.0.0.1:7860[/]

  conceptlab studio --root runs --model kandinsky-2.2 --port 7861

  conceptlab studio --host 0.0.0.0 --auth-file ~/.studio-login   [dim]# a first line USER:PASS[/]

Pages: Create, Imagine, Evolve, Library, Compare. Every job is the request the matching command builds (the page
shows its command line) and runs one at a time on the server, so closing the browser does not stop it; Stop does
what Ctrl-C does. Binds 127.0.0.1; never makes a public share link. Needs pip install 'conceptlab\\[studio]'.
"""


def studio_command(
    root: Annotated[Path, typer.Option(help="The library: every concept, run and image set under this folder.")] = Path(
        "runs"
    ),
    host: Annotated[str, typer.Option(help="Address to serve on; any but loopback needs --auth or --auth-file.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 7860,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model the forms start with (default: each command's).")
    ] = None,
    auth: Annotated[str | None, typer.Option(help="USER:PASS the page asks for (shows in ps; prefer --auth-file).")] = (
        None
    ),
    auth_file: Annotated[Path | None, typer.Option(help="A file whose first line is USER:PASS.")] = None,
) -> None:
    """Open the studio: create, imagine, evolve, browse and compare concepts in a browser."""
    login = credentials(auth, auth_file)
    check_host(host, login)
    if not 0 < port < 65536:
        raise UsageError(f"--port {port}: give a port from 1 to 65535.")
    if importlib.util.find_spec("gradio") is None:
        raise UsageError("The studio needs Gradio; install it with: pip install 'conceptlab[studio]'.")
    from conceptlab.cli.studio_app import StudioSettings, serve

    serve(StudioSettings(root, host, port, model, login))
