"""`conceptlab doctor`: what to check before a long run, gathered without loading any weights.

Torch and CUDA versions, each device with its free memory, for each backend where each of its models would come
from (a folder, the hub cache, or missing, with its size on disk), the offload decision `create` would take on the
GPU and why, and whether the hub is switched off (`HF_HUB_OFFLINE`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from conceptlab.engine.errors import UsageError
from conceptlab.engine.io.records import record_bytes
from conceptlab.engine.models.backend import Backend
from conceptlab.engine.models.offload import HEADROOM_BYTES
from conceptlab.engine.models.plugins import backend_names, find, load_backend, names
from conceptlab.engine.models.settings import CLIP_ROLE, SD_ROLE, Settings, load_settings

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".ckpt")
MAX_WALK_ENTRIES = 20_000
"""Files and folders the size walk visits before it gives up: a model folder holds dozens; `prior = "/"` in a
settings file would otherwise walk the whole filesystem."""
HUB_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}
"""What huggingface_hub reads as true (`constants.ENV_VARS_TRUE_VALUES`, compared after `.upper()`, unstripped)."""
COMMIT = re.compile(r"^[0-9a-f]{40}$")
"""What a hub cache's `refs/<revision>` holds: a commit hash, never a path."""


def hub_offline() -> bool:
    """`HF_HUB_OFFLINE` (else `TRANSFORMERS_OFFLINE`) read as huggingface_hub reads it (`constants._is_true`): " 1"
    is not true there, so it is not here."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return value is not None and value.upper() in HUB_TRUE_VALUES


def is_hub_id(reference: str) -> bool:
    """A repo id as huggingface_hub validates one (`owner/name`, no `..`, no `--`): `owner/../../etc` is not."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(reference)
    except HFValidationError:
        return False
    return "/" in reference


@dataclass(frozen=True)
class ModelPlace:
    """Where one model of a backend would be loaded from."""

    role: str
    """prior, decoder, oracle, clip or sd."""
    reference: str
    """The hub id, folder or name that would load (what the settings file names, else the default)."""
    revision: str | None
    where: str
    """folder, hub cache, missing, built on first use, or none (the role loads nothing of its own)."""
    bytes: int | None = None
    """Size on disk (of the weights files) when present."""
    from_settings: bool = False


@dataclass(frozen=True)
class Device:
    name: str
    detail: str
    free_bytes: int | None = None
    total_bytes: int | None = None


@dataclass(frozen=True)
class BackendReport:
    name: str
    models: tuple[ModelPlace, ...]
    offload: str
    """The decision `create --images --adaptive` would take on the default device, and why."""


@dataclass(frozen=True)
class DoctorReport:
    torch: str
    cuda: str | None
    devices: tuple[Device, ...]
    backends: tuple[BackendReport, ...]
    hub_offline: bool
    settings_file: str | None
    hub_cache: str
    notes: tuple[str, ...] = field(default=())


def doctor() -> DoctorReport:
    """Everything `conceptlab doctor` shows; reads configs, folders and the hub cache, never weights."""
    from huggingface_hub import constants

    settings = load_settings()
    devices = tuple(_devices())
    free = next((device.free_bytes for device in devices if device.free_bytes is not None), None)
    backends = tuple(_backend_report(load_backend(name), settings, free) for name in backend_names())
    return DoctorReport(
        torch=torch.__version__,
        cuda=torch.version.cuda,
        devices=devices,
        backends=backends,
        hub_offline=hub_offline(),
        settings_file=str(settings.path) if settings.path else None,
        hub_cache=str(constants.HF_HUB_CACHE),
    )


def _devices() -> list[Device]:
    devices = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            devices.append(Device(f"cuda:{index}", torch.cuda.get_device_name(index), free, total))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append(Device("mps", "Apple GPU (shares the system's memory)"))
    devices.append(Device("cpu", f"{os.cpu_count()} cores"))
    return devices


def _backend_report(backend: Backend, settings: Settings, free_bytes: int | None) -> BackendReport:
    models = tuple(_model_places(backend, settings))
    return BackendReport(backend.name, models, offload_decision(models, free_bytes))


def _model_places(backend: Backend, settings: Settings) -> list[ModelPlace]:
    defaults = {
        "prior": backend.default_model,
        "decoder": backend.default_decoder,
        "oracle": _oracle_default(backend.default_oracle),
        CLIP_ROLE: _plugin_default("conceptlab.evaluators", backend.evaluation_clip),
        SD_ROLE: backend.default_sd or _role_default("conceptlab.baselines", SD_ROLE),
    }
    places = []
    for role, default in defaults.items():
        named, revision = settings.model(backend.name, role)
        reference = named or default
        if reference is None:
            places.append(ModelPlace(role, f"(the prior's own CLIP: {backend.default_oracle})", None, "none"))
            continue
        where, size = locate(reference, revision)
        places.append(ModelPlace(role, reference, revision, where, size, named is not None))
    return places


def _oracle_default(name: str) -> str | None:
    """The default weights of the oracle `name`; None for one that loads nothing of its own (clip-zeroshot)."""
    return getattr(find("conceptlab.oracles", name), "default_model", None)


def _plugin_default(group: str, name: str) -> str | None:
    return getattr(find(group, name), "default_model", None)


def _role_default(group: str, role: str) -> str | None:
    """The default weights of the plugin of `group` whose weights the settings key `role` names (`settings_role`)."""
    for name in names(group):
        if getattr(find(group, name), "settings_role", None) == role:
            return _plugin_default(group, name)
    return None


def locate(reference: str, revision: str | None = None) -> tuple[str, int | None]:
    """Where `reference` would load from, and its weights' size on disk: a local folder, the hub cache, missing,
    or (a name like `tiny`) built on first use."""
    path = Path(reference).expanduser()
    if path.exists():
        return "folder", _weights_bytes(path)
    if not is_hub_id(reference):
        return "built on first use", None
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    repo = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=reference, repo_type="model")
    snapshot = _snapshot(repo, revision)
    if snapshot is None:
        return "missing", None
    return "hub cache", _weights_bytes(snapshot)


def _snapshot(repo: Path, revision: str | None) -> Path | None:
    """The snapshot folder a revision names: through `refs/<revision>` (a commit hash, read as a small regular
    file), else a commit folder of that name; never a path that leads out of `snapshots`."""
    snapshots = repo / "snapshots"
    ref = repo / "refs" / (revision or "main")
    if ref.is_file() and ref.resolve().is_relative_to(repo.resolve()):
        try:
            commit = record_bytes(ref, 256).decode("ascii", "replace").strip()
        except UsageError:
            return None
        return snapshots / commit if COMMIT.match(commit) and (snapshots / commit).is_dir() else None
    if revision and COMMIT.match(revision) and (snapshots / revision).is_dir():
        return snapshots / revision
    found = sorted(snapshots.iterdir()) if snapshots.is_dir() and revision is None else []
    return found[0] if found else None


def _weights_bytes(path: Path) -> int | None:
    """Bytes of the weight files under `path` (links to files followed, as the hub cache links to its blobs; links
    to folders not); None past `MAX_WALK_ENTRIES` entries: that is no model folder, and it is not walked."""
    if path.is_file():
        return path.stat().st_size
    files, seen = set(), 0
    for folder, folders, entries in os.walk(path):
        seen += len(folders) + len(entries)
        if seen > MAX_WALK_ENTRIES:
            return None
        files |= {(Path(folder) / name).resolve() for name in entries if Path(name).suffix in WEIGHT_SUFFIXES}
    return sum(file.stat().st_size for file in files if file.is_file())


def offload_decision(models: tuple[ModelPlace, ...], free_bytes: int | None) -> str:
    """What `create` with checkpoint images and an oracle would decide on the first GPU (see `offload_needed`):
    the prior is put on the GPU first; offloading is on when the decoder, the oracle and 2 GiB for activations
    would not fit in what is left."""
    if free_bytes is None:
        return "no offloading: no CUDA GPU (offloading applies only there)"
    sizes = {place.role: place.bytes for place in models if place.role in ("prior", "decoder", "oracle")}
    unknown = [role for role, size in sizes.items() if size is None and _place(models, role).where != "none"]
    if unknown:
        return f"cannot tell: the {', '.join(unknown)} weights are not on disk to measure"
    prior, waiting = sizes["prior"] or 0, (sizes["decoder"] or 0) + (sizes.get("oracle") or 0)
    left = free_bytes - prior
    needed = waiting + HEADROOM_BYTES
    verdict = "offload" if needed > left else "keep all resident"
    sign = ">" if needed > left else "<="
    return (
        f"{verdict}: decoder + oracle {_gb(waiting)} + 2 GiB activations = {_gb(needed)} {sign} "
        f"{_gb(left)} free after the prior ({_gb(prior)}; sizes on disk)"
    )


def _place(models: tuple[ModelPlace, ...], role: str) -> ModelPlace:
    return next(place for place in models if place.role == role)


def _gb(count: int) -> str:
    return f"{count / 1e9:.1f} GB"
