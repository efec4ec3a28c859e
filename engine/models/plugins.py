"""Find plugins through their entry-point groups (built-ins use the same door), and map `--model` to a backend.

Every kind of plugin is looked up the same way, `find(group, name)`, so an unknown name reads the same whatever
the kind: "Unknown oracle 'x'; installed oracles: blip2, clip-zeroshot."
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from conceptlab.engine.errors import UsageError
from conceptlab.engine.models.backend import BACKEND_GROUP, Backend
from conceptlab.engine.models.settings import load_settings


def names(group: str) -> list[str]:
    """The names registered in the entry-point `group`, sorted."""
    return sorted(entry.name for entry in entry_points(group=group))


def plugin_kind(group: str) -> str:
    """What one plugin of `group` is called in messages: "conceptlab.oracles" -> "oracle"."""
    return group.rpartition(".")[2].removesuffix("s")


def find(group: str, name: str) -> Any:
    """The object registered under `name` in the entry-point `group` (a class or factory, not yet called)."""
    for entry in entry_points(group=group):
        if entry.name == name:
            return entry.load()
    kind = plugin_kind(group)
    installed = ", ".join(names(group)) or "none"
    raise UsageError(f"Unknown {kind} {name!r}; installed {kind}s: {installed}.")


def declared_default(purpose: str, groups: tuple[str, ...] = (BACKEND_GROUP,)) -> str:
    """The name of the one plugin of `groups` whose `default_for` claims `purpose` ("concepts", "imagine"): the
    plugins, not the engine, say which model a command uses when --model is left out."""
    claims = [
        name for group in groups for name in names(group) if purpose in getattr(find(group, name), "default_for", ())
    ]
    if len(claims) != 1:
        claimed = ", ".join(claims) or "none"
        raise UsageError(
            f"The installed plugins declare {len(claims)} default models for {purpose} ({claimed}); pass --model."
        )
    return claims[0]


def backend_names() -> list[str]:
    return names(BACKEND_GROUP)


def load_backend(name: str) -> Backend:
    """Instantiate the backend registered under `name`."""
    return find(BACKEND_GROUP, name)()


def default_prior(backend: Backend) -> str:
    """What a backend's name means as `--model`: the prior the settings file names for it, else its default."""
    return load_settings().model(backend.name, "prior")[0] or backend.default_model


def resolve_model(model: str, backend: str | None = None) -> tuple[Backend, str]:
    """Map `--model` (a backend name, a hub id or a folder) and `--backend` to a backend and a model reference.

    A backend name alone means that backend's default model (or the prior the settings file names for it). A hub id
    or folder needs `--backend`, unless it is some backend's default model id.
    """
    model = model.strip()
    if not model:
        raise UsageError("--model is empty; give a backend name, a hub id or a local folder.")
    names = backend_names()
    if backend is not None:
        chosen = load_backend(backend)
        return chosen, default_prior(chosen) if model == chosen.name else model
    if model in names:
        chosen = load_backend(model)
        return chosen, default_prior(chosen)
    for name in names:
        candidate = load_backend(name)
        if candidate.default_model == model:
            return candidate, model
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1  # a hub id is owner/name
    if looks_like_path and not Path(model).expanduser().exists():
        raise UsageError(f"--model {model}: no such folder; give a folder saved with save_pretrained, or a hub id.")
    kind = "folder" if Path(model).exists() else "model id"
    raise UsageError(f"Cannot tell which backend the {kind} {model!r} is for; add --backend ({', '.join(names)}).")
