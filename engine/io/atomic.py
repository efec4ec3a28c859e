"""Atomic file writes (a reader sees the old file or the new one, never half of one), and the one refusal to
write over what is already there."""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conceptlab.engine.errors import UsageError


def write_atomically(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it over `path`.

    The temporary file is opened with `mode` (default 0666), which the kernel narrows by the umask as for any
    `open`: concepts are made to be shared, so not the private 0600 of `tempfile.mkstemp` (and no process-wide umask
    juggling); a copy of a private file passes the file's own mode, so it is private from its first byte.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next(parent for parent in path.parents if parent.is_file())
        raise UsageError(f"Cannot write {path}: {blocking} is a file, not a folder; choose another path.") from None
    temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as error:
        raise naming(error, path) from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise naming(error, path) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def naming(error: OSError, path: Path | str) -> OSError:
    """`error` as the file that could not be written: a full disk's error names no file (it fails in `write`), and
    the temporary name would mean nothing to the user."""
    return OSError(error.errno, error.strerror or str(error), str(path))


def write_text(path: Path, text: str) -> None:
    write_atomically(path, text.encode("utf-8"))


def json_text(data: Any, default: Callable[[Any], Any] | None = None) -> str:
    """`data` as indented JSON with sorted keys: the one way JSON is written, to files and to stdout.

    NaN and ±Infinity (a concept's numbers can hold them; JSON has no words for them) become null, and
    `allow_nan=False` makes sure nothing else slips through as bare `NaN`. `default` turns other objects into JSON.
    """
    return json.dumps(_finite(data), indent=2, sort_keys=True, allow_nan=False, default=default)


def _finite(data: Any) -> Any:
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(item) for item in data]
    return data


def write_json(path: Path, data: Any) -> None:
    """`data` as `json_text` with a final newline: the same data always gives the same bytes."""
    write_text(path, json_text(data) + "\n")


def refuse_existing(paths: Iterable[Path | None], force: bool, what: str, other_way: str = "") -> None:
    """Refuse to write over any of `paths` that exists, unless `force`; checked before any work starts.

    `what` names the choice to change instead ("--out", "file"); `other_way` adds one more way out, e.g.
    ", or --resume the run".
    """
    existing = [path for path in paths if path is not None and path.exists()]
    if existing and not force:
        more, them = (f" (and {len(existing) - 1} more)", "them") if len(existing) > 1 else ("", "it")
        raise UsageError(
            f"{existing[0]} already exists{more}; choose another {what} or add --force to write over {them}{other_way}."
        )


def refuse_system_folder(path: Path, what: str) -> None:
    """Refuse to write a run, a gallery or a batch straight into a filesystem root (`/`, a mounted disk) or the home
    folder: `--force` there would clear files of the user's own, and the outputs belong in a folder of their own."""
    resolved = Path(path).expanduser().resolve()
    if resolved == Path(resolved.anchor) or os.path.ismount(resolved) or resolved == Path.home().resolve():
        kind = "the home folder" if resolved == Path.home().resolve() else "a filesystem root"
        raise UsageError(f"{what} {path} is {kind}; give a folder inside it (e.g. {Path(path) / 'runs'}).")


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Run a block in `path` (Python 3.10's stand-in for `contextlib.chdir`)."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)
