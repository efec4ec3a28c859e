"""The architecture's promises: engine is a library free of the CLI and of named models."""

import ast
import functools
import subprocess
import sys
from pathlib import Path

import conceptlab.engine

ENGINE = Path(conceptlab.engine.__file__).parent


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
    """The engine's sub-package a module lives in (`training`, `io`, ...), or the module itself at the top."""
    return module.split(".")[2] if module.count(".") >= 2 else module


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


def _rooms_in_readme_order() -> list[str]:
    """The engine's rooms as the README's Layout table lists them, lowest first."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Layout", 1)[1]
    rooms = []
    for line in table.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names = first_cell.strip().split(", ")
            rooms += [name.strip("`").removesuffix("/").removesuffix(".py") for name in names]
    return rooms


def test_each_room_imports_only_rooms_above_it_in_the_readme():
    order = _rooms_in_readme_order()
    rooms = _engine_imports(_room)
    assert set(rooms).union(*rooms.values()) <= set(order), "a room is missing from the README's Layout"
    upward = {
        f"{room} -> {imported}"
        for room, imports in rooms.items()
        for imported in imports
        if order.index(imported) >= order.index(room)
    }
    assert not upward


CLI = ENGINE.parent / "cli"
PENDING_BENCH_HELPER = {"bench.py", "demo.py", "evaluate.py"}
"""TEMPORARY: the `bench` helper's commands, which load models and write files in cli/ until its branch makes them
one request each. The integrator deletes this set (and its use below) after merging that branch."""
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
    return {
        path.name: ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(CLI.glob("*.py"))
        if path.name not in PENDING_BENCH_HELPER
    }


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
    assert len(modules) + len(PENDING_BENCH_HELPER) == len(list(CLI.glob("*.py")))
    assert {"load_prior", "load_decoder", "load_oracle", "load_backend", "load_baseline"} <= _engine_functions("load_")
    assert {"save_concept", "write_json", "write_gallery"} <= _engine_functions("write_", "save_")
