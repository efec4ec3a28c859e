"""One run per output folder: a lock file naming the process that holds it.

A lock left by a process that died (killed, machine rebooted) is taken over, so it never blocks a folder
forever; a lock held by a live process on this host, or by any process on another host, is respected.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from conceptlab.engine.errors import UsageError

LOCK_NAME = ".conceptlab.lock"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists but belongs to another user
        return True
    return True


def _holder(path: Path) -> dict | None:
    """The lock's `{pid, host}`, or None when it is unreadable (a crash between creating and writing it).

    A lock another process created a moment ago and has not written yet also reads as None; that window is
    a few microseconds, against runs that take minutes.
    """
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None


def _is_stale(holder: dict | None) -> bool:
    if holder is None:
        return True
    return holder.get("host") == socket.gethostname() and not _process_alive(holder["pid"])


class RunLock:
    """`with RunLock(folder):` holds `folder/.conceptlab.lock` for this process until the block ends.

    Entering a lock already acquired keeps it (so `with folder.claim(...):` releases what `claim` took).
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_NAME
        self.held = False

    def acquire(self) -> None:
        if self.held:
            return
        for _ in range(2):
            try:
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _holder(self.path)
                if not _is_stale(holder):
                    raise UsageError(
                        f"{self.path.parent} is in use by process {holder['pid']} on {holder.get('host')}; "
                        f"wait for it, or delete {self.path} if that process is gone."
                    ) from None
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump({"pid": os.getpid(), "host": socket.gethostname()}, file)
            self.held = True
            return
        raise UsageError(f"{self.path.parent} is being claimed by another process; try again.")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()
