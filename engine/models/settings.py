"""The settings file: which weights each backend's models load, named once instead of on every command line.

`conceptlab.toml` in the working directory, else `$XDG_CONFIG_HOME/conceptlab/config.toml` (`~/.config/...`);
`CONCEPTLAB_CONFIG` names another file (empty: none). One table per backend:

    [models."kandinsky-2.2"]
    prior = "/models/kandinsky-2-2-prior"      # a folder (relative to this file), a hub id
    decoder = "/models/kandinsky-2-2-decoder"
    decoder_revision = "main"
    oracle = "Salesforce/blip2-flan-t5-xl"
    clip = "/models/clip-vit-large-patch14"
    sd = "stabilityai/stable-diffusion-2-1"

A command-line option wins over the file; the file wins over the backend's built-in default.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from conceptlab.engine.errors import UsageError
from conceptlab.engine.io.records import check_depth, record_bytes
from conceptlab.engine.models.backend import BACKEND_GROUP

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

FILE_NAME = "conceptlab.toml"
ENVIRONMENT = "CONCEPTLAB_CONFIG"
CLIP_ROLE = "clip"
"""The settings key of the CLIP that scores a backend's images (a role, not the evaluator of that name)."""
SD_ROLE = "sd"
"""The settings key of the Stable Diffusion weights a baseline runs for a backend."""
MODEL_ROLES = ("prior", "decoder", "oracle", CLIP_ROLE, SD_ROLE)
"""The models a backend's table may name (each also with `<role>_revision`)."""
MAX_SETTINGS_BYTES = 1024 * 1024
"""A settings file names a few folders; a megabyte is far more than any needs."""
KEYS = frozenset(MODEL_ROLES) | {f"{role}_revision" for role in MODEL_ROLES}


@dataclass(frozen=True)
class Settings:
    path: Path | None
    """The file read; None when there is none."""
    models: dict[str, dict[str, str]] = field(default_factory=dict)
    """Backend name -> key (`prior`, `decoder_revision`, ...) -> value, folders made absolute."""

    def model(self, backend: str, role: str) -> tuple[str | None, str | None]:
        """(weights, revision) the file names for `role` of `backend`; (None, None) when it names none."""
        table = self.models.get(backend, {})
        return table.get(role), table.get(f"{role}_revision")


def configured(backend: str, role: str, given: str | None, revision: str | None) -> tuple[str | None, str | None]:
    """`given` (a command-line option) with `revision`, else what the settings file names for `role` of `backend`
    with its revision, else (None, `revision`): the backend's default."""
    if given is not None:
        return given, revision
    named, named_revision = load_settings().model(backend, role)
    return (named, revision or named_revision) if named is not None else (None, revision)


def settings_path() -> Path | None:
    """The settings file in effect: `CONCEPTLAB_CONFIG`, else ./conceptlab.toml, else the XDG one, else None."""
    named = os.environ.get(ENVIRONMENT)
    if named is not None:
        return Path(named).expanduser() if named.strip() else None
    local = Path.cwd() / FILE_NAME
    if local.is_file():
        return local
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "conceptlab" / "config.toml"
    return xdg if xdg.is_file() else None


def load_settings() -> Settings:
    """Read the settings file in effect (cheap: it is small); a bad one is refused in one line naming file and key."""
    path = settings_path()
    if path is None:
        return Settings(None)
    if not os.path.lexists(path):
        raise UsageError(f"{ENVIRONMENT}={path}: no such file; point it at a settings file or set it empty for none.")
    data = record_bytes(path, MAX_SETTINGS_BYTES, fix="; point at a settings file, or move it away")
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"{path}: not a readable TOML file ({error}); fix it or move it away.") from None
    except RecursionError:
        raise UsageError(f"{path} is nested too deeply to be a settings file; fix it or move it away.") from None
    check_depth(path, table, "; fix it or move it away")
    return Settings(path, _models(path, table))


def _models(path: Path, data: dict) -> dict[str, dict[str, str]]:
    unknown = sorted(set(data) - {"models"})
    if unknown:
        raise UsageError(f'{path}: unknown table or key {unknown[0]!r}; the file holds [models."BACKEND"] tables.')
    tables = data.get("models", {})
    if not isinstance(tables, dict):
        raise UsageError(f'{path}: models must be tables, e.g. [models."kandinsky-2.2"] with prior = "...".')
    known = sorted(entry.name for entry in entry_points(group=BACKEND_GROUP))
    models = {}
    for backend, table in tables.items():
        if backend not in known:
            raise UsageError(f"{path}: [models.{backend}] names no backend; use one of {', '.join(known)}.")
        if not isinstance(table, dict):
            raise UsageError(f'{path}: models.{backend} must be a table, e.g. [models."{backend}"] prior = "...".')
        models[backend] = {key: _value(path, backend, key, value) for key, value in table.items()}
    return models


def _value(path: Path, backend: str, key: str, value: object) -> str:
    where = f"{path}: models.{backend}.{key}"
    if key not in KEYS:
        raise UsageError(f"{where} is not a setting; use {', '.join(MODEL_ROLES)} (and <name>_revision).")
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f'{where} must be a non-empty string (a folder or a hub id), e.g. {key} = "owner/name".')
    return value if key.endswith("_revision") else _weights(path.parent, value.strip())


def _weights(base: Path, value: str) -> str:
    """A folder relative to the settings file made absolute (it means the same from any working directory); a hub
    id or backend name as written."""
    if value.startswith(("/", "~", ".")):
        return str((base / Path(value).expanduser()).resolve())
    candidate = base / value
    return str(candidate.resolve()) if candidate.exists() else value
