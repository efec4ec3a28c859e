"""The `conceptlab` command: wires the commands together and turns errors into one line."""

from __future__ import annotations

import errno
import os
import sys

import typer

from conceptlab.cli.batch import BATCH_EXAMPLES, batch_command, expand_ray_flag
from conceptlab.cli.bench import BENCH_EXAMPLES, bench_command
from conceptlab.cli.breed import BREED_EXAMPLES, breed_command
from conceptlab.cli.convert import CONVERT_EXAMPLES, convert_command
from conceptlab.cli.create import CREATE_EXAMPLES, MIX_EXAMPLES, create_command, mix_command
from conceptlab.cli.demo import demo_command
from conceptlab.cli.doctor import DOCTOR_EXAMPLES, doctor_command
from conceptlab.cli.embed import EMBED_EXAMPLES, embed_command
from conceptlab.cli.evaluate import EVALUATE_EXAMPLES, evaluate_command
from conceptlab.cli.evolve import EVOLVE_EXAMPLES, evolve_command
from conceptlab.cli.gallery import GALLERY_EXAMPLES, gallery_command
from conceptlab.cli.imagine import IMAGINE_EXAMPLES, PICK_EXAMPLES, imagine_command, pick_command
from conceptlab.cli.info import INFO_EXAMPLES, info_command
from conceptlab.cli.lineage import LINEAGE_EXAMPLES, VERIFY_EXAMPLES, lineage_command, verify_command
from conceptlab.cli.output import error
from conceptlab.cli.sample import SAMPLE_EXAMPLES, sample_command
from conceptlab.cli.studio import STUDIO_EXAMPLES, studio_command
from conceptlab.engine.errors import ConceptLabError

app = typer.Typer(
    name="conceptlab",
    help="Invent new concepts with a diffusion prior (ConceptLab). Every concept is a safetensors token file.",
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("create", help="Invent a new member of a category, unlike given negatives.", epilog=CREATE_EXAMPLES)(
    create_command
)
app.command("mix", help="Blend several words into one hybrid concept.", epilog=MIX_EXAMPLES)(mix_command)
app.command("evolve", help="Breed a child concept from parent concepts or image folders.", epilog=EVOLVE_EXAMPLES)(
    evolve_command
)
app.command("sample", help="Render prompts that use learned concepts.", epilog=SAMPLE_EXAMPLES)(sample_command)
app.command(
    "imagine", help="Creative images without training: an oracle grows each one's negatives.", epilog=IMAGINE_EXAMPLES
)(imagine_command)
app.command("pick", help="Copy chosen images of an imagine run into a folder for evolve.", epilog=PICK_EXAMPLES)(
    pick_command
)
app.command("embed", help="Export the prior's image embeddings of a prompt with concepts.", epilog=EMBED_EXAMPLES)(
    embed_command
)
app.command("info", help="Show everything a concept file records.", epilog=INFO_EXAMPLES)(info_command)
app.command("lineage", help="Show a concept's family tree (parents not needed).", epilog=LINEAGE_EXAMPLES)(
    lineage_command
)
app.command("verify", help="Check a concept's sha256 and which ancestors are present.", epilog=VERIFY_EXAMPLES)(
    verify_command
)
app.command("bench", help="Time the create step: ours against the official code's, per step.", epilog=BENCH_EXAMPLES)(
    bench_command
)
for _name, _hidden in (("evaluate", False), ("eval", True)):
    app.command(
        _name,
        help="CLIP metrics for concepts, image folders and baselines (alias: eval).",
        epilog=EVALUATE_EXAMPLES,
        hidden=_hidden,
    )(evaluate_command)
app.command("convert", help="Turn an official-code .bin embedding into a concept file.", epilog=CONVERT_EXAMPLES)(
    convert_command
)
app.command("batch", help="Run a plan of many jobs, here or on a Ray cluster.", epilog=BATCH_EXAMPLES)(batch_command)
app.command("breed", help="Evolve a population of concepts over generations.", epilog=BREED_EXAMPLES)(breed_command)
app.command("gallery", help="Write a static web page of concepts and their family graph.", epilog=GALLERY_EXAMPLES)(
    gallery_command
)
app.command("studio", help="The creative loop in a browser: a local Gradio app.", epilog=STUDIO_EXAMPLES)(
    studio_command
)
app.command("demo", help="A new pet on the tiny offline backend (a first run also builds the tiny world).")(
    demo_command
)
app.command("doctor", help="Check torch, devices and which models are present, loading none.", epilog=DOCTOR_EXAMPLES)(
    doctor_command
)


@app.callback(invoke_without_command=True)
def _root(context: typer.Context) -> None:
    """Show the help when no command is given; keep the libraries' loading chatter off the terminal."""
    if context.invoked_subcommand is None:
        print(context.get_help())
        raise typer.Exit(0)
    import diffusers
    import huggingface_hub
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.logging.set_verbosity_error()  # offline, its retries would print a warning each


def _click_error_line(exception: Exception) -> str:
    """One line for a parsing error of the click that Typer bundles (missing option, bad value, ...)."""
    context = getattr(exception, "ctx", None)
    command = context.command_path if context else "conceptlab"
    return f"{exception.format_message()} (see '{command} --help')"


def _is_click_error(exception: Exception) -> bool:
    return hasattr(exception, "format_message") and isinstance(getattr(exception, "exit_code", None), int)


def main(argv: list[str] | None = None) -> int:
    """Run the app; every error becomes one line on stderr and an exit code (2 for usage errors)."""
    try:
        arguments = expand_ray_flag(sys.argv[1:] if argv is None else argv)
        result = app(args=arguments, prog_name="conceptlab", standalone_mode=False)
    except ConceptLabError as exception:
        error(str(exception))
        return exception.exit_code
    except (KeyboardInterrupt, typer.Abort):
        error("interrupted.")
        return 130
    except OSError as exception:
        where = f"{exception.filename}: " if exception.filename else ""
        fix = "check the path and its permissions"
        if exception.errno in (errno.ENOSPC, errno.EDQUOT):
            fix = "free some space and run the command again (a training run goes on with --resume)"
        error(f"{where}{exception.strerror or exception}; {fix}.")
        return 1
    except Exception as exception:
        if _is_click_error(exception):
            error(_click_error_line(exception))
            return exception.exit_code
        # A bug: keep it to one line unless asked for the traceback.
        if os.environ.get("CONCEPTLAB_DEBUG"):
            raise
        error(f"internal error: {type(exception).__name__}: {exception} (set CONCEPTLAB_DEBUG=1 for details)")
        return 1
    return result if isinstance(result, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
