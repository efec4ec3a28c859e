"""Find backends through the `conceptlab.backends` entry-point group (built-ins use the same door)."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from conceptlab.engine.errors import UsageError
from conceptlab.engine.models.backend import Backend

BACKEND_GROUP = "conceptlab.backends"


def backend_names() -> list[str]:
    return sorted(entry.name for entry in entry_points(group=BACKEND_GROUP))


def load_backend(name: str) -> Backend:
    """Instantiate the backend registered under `name`."""
    for entry in entry_points(group=BACKEND_GROUP):
        if entry.name == name:
            return entry.load()()
    raise UsageError(f"Unknown backend {name!r}; installed backends: {', '.join(backend_names())}.")


def resolve_model(model: str, backend: str | None = None) -> tuple[Backend, str]:
    """Map `--model` (a backend name, a hub id or a folder) and `--backend` to a backend and a model reference.

    A backend name alone means that backend's default model. A hub id or folder needs `--backend`, unless it is
    some backend's default model id.
    """
    model = model.strip()
    if not model:
        raise UsageError("--model is empty; give a backend name, a hub id or a local folder.")
    names = backend_names()
    if backend is not None:
        chosen = load_backend(backend)
        return chosen, chosen.default_model if model == chosen.name else model
    if model in names:
        chosen = load_backend(model)
        return chosen, chosen.default_model
    for name in names:
        candidate = load_backend(name)
        if candidate.default_model == model:
            return candidate, model
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1  # a hub id is owner/name
    if looks_like_path and not Path(model).expanduser().exists():
        raise UsageError(f"--model {model}: no such folder; give a folder saved with save_pretrained, or a hub id.")
    kind = "folder" if Path(model).exists() else "model id"
    raise UsageError(f"Cannot tell which backend the {kind} {model!r} is for; add --backend ({', '.join(names)}).")
