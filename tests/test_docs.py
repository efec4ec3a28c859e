"""The docs a newcomer walks: every relative link in README.md and docs/ resolves (file and #anchor), every
`conceptlab ...` line in a code block names a real command with real options (checked against the Typer app, never
run), and every Python snippet imports names the library has and calls them with arguments they take."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import shlex
import sys
from pathlib import Path

import pytest
import typer

from conceptlab.cli import app as cli_app

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SHELL_OPERATORS = {"&&", "||", "|", ";", ">", ">>", "<", "&", "2>"}


def _blocks(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The lines outside fenced code blocks, and each fenced block as (its info string, its lines)."""
    prose: list[str] = []
    blocks: list[tuple[str, list[str]]] = []
    current: tuple[str, list[str]] | None = None
    for line in text.splitlines():
        if FENCE.match(line):
            if current is None:
                current = (line.strip().lstrip("`~").strip(), [])
            else:
                blocks.append(current)
                current = None
        elif current is None:
            prose.append(line)
        else:
            current[1].append(line)
    return prose, blocks


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: inline markup dropped, lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor; a repeated slug gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in _blocks(text)[0]:
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = github_slug(heading.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(path: Path) -> list[str]:
    """The relative links of a markdown file (outside code) that name no existing file, or no heading in it."""
    prose = re.sub(r"`[^`]*`", "", "\n".join(_blocks(path.read_text(encoding="utf-8"))[0]))
    broken = []
    for target in LINK.findall(prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # http:, https:, mailto: ... are not checked here
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked.read_text(encoding="utf-8"))):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    return broken


def command_lines(text: str) -> list[str]:
    """Lines of fenced code blocks that run conceptlab (a leading `$ ` prompt allowed)."""
    lines = (line.strip() for _, block in _blocks(text)[1] for line in block)
    lines = (line.removeprefix("$ ") for line in lines)
    return [line for line in lines if line.startswith("conceptlab ")]


def _shell_words(line: str) -> list[str]:
    """The words of the first command of a shell line: comments dropped, cut at `&&`, `|`, `>`, ..."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = []
    for word in lexer:
        if word in SHELL_OPERATORS:
            break
        words.append(word)
    return words


def _check_arguments(command, arguments: list[str]) -> str | None:
    """`command` is a click command of the click that Typer bundles (so no `isinstance` against `click`)."""
    options = {
        name: param
        for param in command.params
        if param.param_type_name == "option"
        for name in (*param.opts, *param.secondary_opts)
    }
    positionals = []
    index = 0
    while index < len(arguments):
        word = arguments[index]
        index += 1
        if word == "--help" or not word.startswith("-") or word == "-":
            positionals += [] if word == "--help" else [word]
            continue
        name, has_value = word.split("=", 1)[0], "=" in word
        param = options.get(name)
        if param is None:
            return f"'{command.name}' has no option {name}"
        if not (param.is_flag or param.count or has_value):
            if index + param.nargs > len(arguments):
                return f"{name} of '{command.name}' needs a value"
            index += param.nargs
    declared = [param for param in command.params if param.param_type_name == "argument"]
    least = sum(max(param.nargs, 1) for param in declared if param.required)
    most = None if any(param.nargs == -1 for param in declared) else sum(param.nargs for param in declared)
    if len(positionals) < least or (most is not None and len(positionals) > most):
        wanted = f"{least}" + ("+" if most is None else "" if most == least else f"-{most}")
        return f"'{command.name}' takes {wanted} positional arguments, given {len(positionals)}: {positionals}"
    return None


def command_problem(line: str) -> str | None:
    """What is wrong with a `conceptlab ...` line against the Typer app (None: nothing), without running it."""
    words = cli_app.expand_ray_flag(_shell_words(line)[1:])
    if not words or words == ["--help"]:
        return None
    group = typer.main.get_command(cli_app.app)
    command = group.commands.get(words[0])
    if command is None:
        return f"no command '{words[0]}' (commands: {', '.join(sorted(group.commands))})"
    return _check_arguments(command, words[1:])


def _python_blocks(text: str) -> list[str]:
    return ["\n".join(block) for info, block in _blocks(text)[1] if info.split(" ")[0] in ("python", "py")]


def snippet_problems(code: str) -> list[str]:
    """Names a Python snippet imports from conceptlab that do not exist, and calls of them that do not bind."""
    problems = []
    imported = {}
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("conceptlab"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                if hasattr(module, alias.name):
                    imported[alias.asname or alias.name] = getattr(module, alias.name)
                else:
                    problems.append(f"{node.module} has no {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in imported:
            keywords = {keyword.arg: None for keyword in node.keywords if keyword.arg}
            try:
                inspect.signature(imported[node.func.id]).bind(*node.args, **keywords)
            except TypeError as exception:
                problems.append(f"{node.func.id}(...) at line {node.lineno}: {exception}")
    return problems


def _all_command_lines() -> list[tuple[str, str]]:
    return [(path.name, line) for path in DOCS for line in command_lines(path.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    assert not broken_links(path)


@pytest.mark.parametrize(("page", "line"), _all_command_lines())
def test_every_command_line_names_a_real_command_with_real_options(page, line):
    assert command_problem(line) is None


def test_the_docs_show_commands_and_snippets():
    lines = {line.split()[1] for _, line in _all_command_lines()}
    assert len(_all_command_lines()) >= 40
    assert {"create", "mix", "evolve", "sample", "embed", "imagine", "eval", "batch", "breed", "gallery"} <= lines


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_python_snippet_imports_real_names_and_calls_them_rightly(path):
    for code in _python_blocks(path.read_text(encoding="utf-8")):
        assert not snippet_problems(code)


def test_the_readme_shows_the_library_and_stays_short():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert any("from conceptlab.engine import" in code for code in _python_blocks(readme))


def test_the_readme_names_every_plugin_group_and_entry():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Plugins", 1)[1].split("\n## ", 1)[0]
    listed = {
        line.split("|")[1].strip().strip("`"): set(re.findall(r"`([^`]+)`", line.split("|")[3]))
        for line in table.splitlines()
        if line.startswith("| `")
    }
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["entry-points"]
    assert listed == {group: set(entries) for group, entries in groups.items()}


def test_the_link_checker_finds_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Two words (`code`)\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n[fine](other.md) [fine too](other.md#two-words-code) [self](#page) [web](https://example.com/x)\n"
        "`[in code](missing.md)`\n```\n[in a block](missing.md)\n```\n"
        "[gone](missing.md) ![gone picture](images/none.png) [no heading](other.md#three-words) [no self](#nope)\n",
        encoding="utf-8",
    )
    broken = broken_links(page)
    assert [entry.split(":")[0] for entry in broken] == [
        "missing.md",
        "images/none.png",
        "other.md#three-words",
        "#nope",
    ]


def test_github_slugs_and_repeated_headings():
    assert github_slug("Imagining without training (`conceptlab imagine`)") == (
        "imagining-without-training-conceptlab-imagine"
    )
    evaluating = github_slug("Evaluating (`conceptlab evaluate`, alias `eval`)")
    assert evaluating == "evaluating-conceptlab-evaluate-alias-eval"
    assert anchors("## Usage\n## Usage\n```\n## not a heading\n```\n") == {"usage", "usage-1"}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("conceptlab create --category pet --negs cat", "'create' has no option --negs"),
        ("conceptlab creat --category pet", "no command 'creat'"),
        ("conceptlab info a.safetensors b.safetensors", "'info' takes 1 positional arguments, given 2"),
        ("conceptlab batch", "'batch' takes 1 positional arguments, given 0"),
        ("conceptlab sample --prompt 'a {}'", "'sample' takes 1+ positional arguments, given 0"),
        ("conceptlab create --category", "--category of 'create' needs a value"),
        ("conceptlab eval x.safetensors --no-json", "'eval' has no option --no-json"),
        ("conceptlab create --category pet -q", "'create' has no option -q"),
    ],
)
def test_the_command_checker_refuses_a_wrong_line(line, problem):
    assert command_problem(line).startswith(problem)


@pytest.mark.parametrize(
    "line",
    [
        "conceptlab --help",
        "conceptlab create --category pet --neg cat,dog --model tiny --steps 200   # offline, in seconds",
        "conceptlab create --category pet --no-adaptive --neg cat --help",
        "conceptlab eval runs/*/*.safetensors --json > runs/metrics.json",
        "conceptlab lineage CHILD.safetensors --dot tree.dot && dot -Tpng tree.dot -o tree.png",
        "conceptlab batch pets.toml --ray",
        "conceptlab batch pets.toml --ray ray://head:10001 --max-parallel 8",
        "conceptlab evaluate --protocol paper --out=eval/paper --ray",
        'conceptlab sample a.safetensors b.safetensors --prompt "{0} and {1}" -n 8 -m tiny',
    ],
)
def test_the_command_checker_takes_a_right_line(line):
    assert command_problem(line) is None


def test_command_lines_come_from_code_blocks_only():
    text = "conceptlab nope\n```bash\n$ conceptlab info x.safetensors\n  conceptlab gallery runs/\n```\n"
    assert command_lines(text) == ["conceptlab info x.safetensors", "conceptlab gallery runs/"]


def test_the_snippet_checker_finds_a_missing_name_and_a_wrong_call():
    code = (
        "from conceptlab.engine import ModelChoice, create_confg\n"
        "from conceptlab.engine import SampleRequest\n"
        "ModelChoice(model='tiny', colour='red')\n"
        "SampleRequest(('a',), 'a {}', n=2)\n"
    )
    problems = snippet_problems(code)
    assert len(problems) == 2
    assert problems[0] == "conceptlab.engine has no create_confg"
    assert problems[1].startswith("ModelChoice(...) at line 3")
