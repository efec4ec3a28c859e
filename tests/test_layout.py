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
        f"{path.name}: {module}"
        for path in ENGINE.glob("*.py")
        for module in _imported_modules(path)
        if module.startswith(("conceptlab.cli", "conceptlab.plugins", "typer", "rich"))
    }
    assert not offenders


def test_engine_names_no_model():
    hub_ids = [path.name for path in ENGINE.glob("*.py") if "kandinsky-community/" in path.read_text(encoding="utf-8")]
    assert not hub_ids


def test_no_bare_top_level_packages_are_installed(tmp_path):
    probe = "import importlib.util as u; print([n for n in ('engine', 'cli', 'plugins') if u.find_spec(n)])"
    found = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
