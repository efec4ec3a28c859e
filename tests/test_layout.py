"""The architecture's promises: engine is a library free of the CLI and of named models."""

import ast
import functools
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import conceptlab.engine
import conceptlab.plugins

ENGINE = Path(conceptlab.engine.__file__).parent
PLUGINS = Path(conceptlab.plugins.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_engine_imports_neither_cli_nor_plugins_nor_typer():
    offenders = {
        f"{path.relative_to(ENGINE)}: {module}"
        for path in ENGINE.rglob("*.py")
        for module in _imported_modules(path)
        if module.startswith(("conceptlab.cli", "conceptlab.plugins", "typer", "rich"))
    }
    assert not offenders


def test_engine_names_no_model():
    hub_ids = [
        str(path.relative_to(ENGINE))
        for path in ENGINE.rglob("*.py")
        if "kandinsky-community/" in path.read_text(encoding="utf-8")
    ]
    assert not hub_ids


ALLOWED_ENGINE_STRINGS = {
    ("models/settings.py", "clip"): "the settings file's key of the evaluating CLIP (`clip = ...` in conceptlab.toml)",
    ("evaluation/evaluate.py", "clip"): "metrics.json's key naming the CLIP that scored the rows",
    ("batch/jobs.py", "clip"): "a batch plan's key for `--clip`",
    ("batch/breed.py", "clip"): "the same plan key, in the jobs breed writes",
    ("imagine/request.py", "tiny"): "`--preview tiny`, a preview mode (a tiny autoencoder), not the tiny model",
}
"""Strings that are spelt like a plugin but name something else the user writes: each kept once, with its reason."""
BENCH_STAND_INS = {"real_width.py", "real_width_sd.py"}
"""The random real-width models `bench` times, built with the tiny world's tokenizers: not plugins that load weights."""


def _entry_point_names() -> set[str]:
    """Every name registered in any `conceptlab.*` entry-point group (a new plugin is covered as it is installed)."""
    points = importlib.metadata.entry_points()
    groups = [group for group in points.groups if group.startswith("conceptlab.")]
    return {entry.name for group in groups for entry in points.select(group=group)}


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """`(line, value)` of every string constant in the module but its docstrings (module, class, function and
    attribute docstrings: strings standing alone as a statement)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_engine_names_no_plugin():
    """What the engine asks of a backend, pipeline, oracle, evaluator, route or baseline, the plugin declares: no
    registered entry-point name is written in engine/ (docstrings aside)."""
    plugin_names = _entry_point_names()
    assert {"tiny", "kandinsky-2.2", "clip-zeroshot", "sd-neg"} <= plugin_names
    offenders = [
        f"{path.relative_to(ENGINE)}:{line}: {value!r}"
        for path in sorted(ENGINE.rglob("*.py"))
        for line, value in _string_constants(path)
        if value in plugin_names and (path.relative_to(ENGINE).as_posix(), value) not in ALLOWED_ENGINE_STRINGS
    ]
    assert not offenders
    allowed_where_found = {
        (path.relative_to(ENGINE).as_posix(), value)
        for path in ENGINE.rglob("*.py")
        for _, value in _string_constants(path)
    }
    assert set(ALLOWED_ENGINE_STRINGS) <= allowed_where_found  # no stale allowance


def _real_plugins() -> list[Path]:
    modules = [*PLUGINS.glob("*.py"), *(PLUGINS / "oracles").glob("*.py")]
    return sorted(path for path in modules if path.name not in BENCH_STAND_INS)


def test_real_plugins_reach_the_tiny_world_only_through_its_resolver():
    """No `tiny` branch in a real plugin (it asks `plugins.tiny.reference` / `recommended`), and no import of the tiny
    world's modules."""
    tiny_strings = [
        f"{path.relative_to(PLUGINS)}:{line}"
        for path in _real_plugins()
        for line, value in _string_constants(path)
        if value == "tiny"
    ]
    assert not tiny_strings
    tiny_internals = [
        f"{path.relative_to(PLUGINS)}: {module}"
        for path in _real_plugins()
        for module in _imported_modules(path)
        if module.startswith("conceptlab.plugins.tiny.")
    ]
    assert not tiny_internals


def test_no_bare_top_level_packages_are_installed(tmp_path):
    probe = "import importlib.util as u; print([n for n in ('engine', 'cli', 'plugins') if u.find_spec(n)])"
    found = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


def _engine_modules() -> dict[str, Path]:
    modules = {}
    for path in ENGINE.rglob("*.py"):
        parts = [part for part in path.relative_to(ENGINE).with_suffix("").parts if part != "__init__"]
        modules[".".join(["conceptlab.engine", *parts])] = path
    return modules


def _room(module: str) -> str:
    """The engine's package a module lives in (`training`, `io`, `evaluation/protocols`, ...), or the module itself
    at the top: a package inside a room is a room of its own."""
    if module.count(".") < 2:
        return module
    parts = module.split(".")[2:]
    package = parts if (ENGINE.joinpath(*parts) / "__init__.py").exists() else parts[:-1]
    return "/".join(package or parts)


def _engine_imports(key) -> dict[str, set[str]]:
    """Who imports whom among the engine's modules, each named by `key` (the module, or its room)."""
    graph: dict[str, set[str]] = {}
    for name, path in _engine_modules().items():
        if name == "conceptlab.engine":
            continue  # the public face imports every room
        for imported in _imported_modules(path):
            if imported.startswith("conceptlab.engine.") and key(imported) != key(name):
                graph.setdefault(key(name), set()).add(key(imported))
    return graph


def _circle(graph: dict[str, set[str]]) -> str | None:
    finished: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> str | None:
        if node in path:
            return " -> ".join((*path[path.index(node) :], node))
        if node in finished:
            return None
        for other in sorted(graph.get(node, ())):
            if found := visit(other, (*path, node)):
                return found
        finished.add(node)
        return None

    return next((found for node in sorted(graph) if (found := visit(node, ()))), None)


def test_engine_modules_import_each_other_without_circles():
    assert _circle(_engine_imports(lambda module: module)) is None


def test_engine_rooms_import_each_other_without_circles():
    rooms = _engine_imports(_room)
    assert _circle(rooms) is None
    assert {"concept", "models", "training", "evaluation", "batch", "gallery", "io"} <= set(rooms)


def test_every_engine_module_imports_in_a_fresh_interpreter():
    names = sorted(_engine_modules())
    probe = f"import importlib\nfor name in {names!r}:\n    importlib.import_module(name)\nprint(len({names!r}))"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr[-2000:]
    assert imported.stdout.strip() == str(len(names))


def _rooms_in_architecture_order() -> list[str]:
    """The engine's rooms as the Layout table of docs/architecture.md lists them, lowest first."""
    page = (Path(__file__).parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = page.split("## Layout", 1)[1]
    rooms = []
    for line in table.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names = first_cell.strip().split(", ")
            rooms += [name.strip("`").removesuffix("/").removesuffix(".py") for name in names]
    return rooms


def test_each_room_imports_only_rooms_above_it_in_the_architecture_page():
    order = _rooms_in_architecture_order()
    rooms = _engine_imports(_room)
    assert set(rooms).union(*rooms.values()) <= set(order), "a room is missing from docs/architecture.md's Layout"
    upward = {
        f"{room} -> {imported}"
        for room, imports in rooms.items()
        for imported in imports
        if order.index(imported) >= order.index(room)
    }
    assert not upward


CLI = ENGINE.parent / "cli"
FILE_READERS = {"load_concept", "load_images", "load_state", "load_settings", "load_into"}
"""Engine `load_*` functions that read a file rather than load a model: a command may call them."""
STDLIB_LOADS = {"from_pretrained", "ModelCache", "evaluating_clip"}
"""Model loads not named `load_*`: the hub's loader, the engine's model cache and the evaluating CLIP."""
STDLIB_WRITES = {"write_text", "write_bytes", "mkdir", "touch", "unlink", "rename", "rmtree", "symlink_to", "save"}
"""Writes by method (`Path.write_text`, `Image.save`, `torch.save`, ...), whatever object they are called on."""
OS_WRITES = {"replace", "rename", "remove", "unlink", "mkdir", "makedirs", "rmdir", "link", "symlink", "truncate"}
"""`os` functions that change files; every function of `shutil` does too."""


@functools.cache
def _defined_functions() -> frozenset[str]:
    """Every function the engine and the plugins define."""
    roots = (ENGINE, ENGINE.parent / "plugins")
    return frozenset(
        node.name
        for root in roots
        for path in root.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    )


def _engine_functions(*prefixes: str) -> set[str]:
    """The functions the engine and the plugins define under one of `prefixes`, so a new one is caught too."""
    return {name for name in _defined_functions() if name.startswith(prefixes)}


def _cli_modules() -> dict[str, ast.Module]:
    return {path.name: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(CLI.glob("*.py"))}


def _named(node: ast.AST) -> str | None:
    """The name a call or reference uses: `load_prior` in `load_prior(...)` and in `loading.load_prior`."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.alias):
        return node.asname or node.name.split(".")[-1]
    return None


def _writes_by_mode(call: ast.Call) -> bool:
    """`open(path, "w")`, `path.open("a")`, `open(path, mode="x")`: a file opened for writing."""
    if _named(call.func) != "open":
        return False
    modes = list(call.args[1:] if isinstance(call.func, ast.Name) else call.args[:1])
    modes += [keyword.value for keyword in call.keywords if keyword.arg == "mode"]
    return any(isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax+") for mode in modes)


def _cli_offences(module: ast.Module) -> list[str]:
    loaders = (_engine_functions("load_") - FILE_READERS) | STDLIB_LOADS
    writers = _engine_functions("write_", "save_") | STDLIB_WRITES
    offences = []
    for node in ast.walk(module):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            offences += [f"imports {name}" for name in modules if name.startswith("conceptlab.plugins")]
            offences += [f"imports {name}" for name in modules if name == "shutil" and isinstance(node, ast.ImportFrom)]
            names = [_named(alias) for alias in node.names]
            offences += [f"imports {name}" for name in names if name in loaders | writers]
        elif isinstance(node, ast.Name | ast.Attribute) and _named(node) in loaders:
            offences.append(f"loads a model: {_named(node)}")
        elif isinstance(node, ast.Call) and (_named(node.func) in writers or _writes_by_mode(node) or _os_write(node)):
            offences.append(f"writes a file: {_named(node.func)}")
    return offences


def _os_write(call: ast.Call) -> bool:
    """`shutil.copy(...)`, `os.replace(...)` and the like."""
    owner = call.func.value if isinstance(call.func, ast.Attribute) else None
    module = owner.id if isinstance(owner, ast.Name) else None
    return module == "shutil" or (module == "os" and _named(call.func) in OS_WRITES)


def test_cli_loads_no_model_imports_no_plugin_and_writes_no_file():
    """Every command is parse -> one frozen request -> one engine call -> print: the engine loads and writes."""
    offences = {name: found for name, module in _cli_modules().items() if (found := _cli_offences(module))}
    assert not offences


def test_the_cli_layout_check_reads_every_command_module():
    modules = _cli_modules()
    assert {"create.py", "sample.py", "gallery.py", "convert.py", "lineage.py", "breed.py"} <= set(modules)
    assert len(modules) == len(list(CLI.glob("*.py")))
    assert {"load_prior", "load_decoder", "load_oracle", "load_backend", "load_baseline"} <= _engine_functions("load_")
    assert {"save_concept", "write_json", "write_gallery"} <= _engine_functions("write_", "save_")
