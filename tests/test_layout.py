"""The architecture's promises: engine is a library free of the CLI and of named models."""

import ast
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
