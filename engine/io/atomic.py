"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conceptlab.engine.errors import UsageError


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it over `path`.

    The temporary file is opened with mode 0666, which the kernel narrows by the umask as for any `open`: concepts
    are made to be shared, so not the private 0600 of `tempfile.mkstemp` (and no process-wide umask juggling).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next(parent for parent in path.parents if parent.is_file())
        raise UsageError(f"Cannot write {path}: {blocking} is a file, not a folder; choose another path.") from None
    temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Run a block in `path` (Python 3.10's stand-in for `contextlib.chdir`)."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)
