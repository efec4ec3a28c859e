"""Who may reach the studio: loopback alone by default; any other address only behind a login."""

from __future__ import annotations

from pathlib import Path

from conceptlab.engine.errors import UsageError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_AUTH_FILE_BYTES = 4096


def credentials(auth: str | None, auth_file: Path | None) -> tuple[str, str] | None:
    """`USER:PASS` from `--auth` or the first line of `--auth-file` (a file keeps the password out of `ps`)."""
    if auth is not None and auth_file is not None:
        raise UsageError("Give --auth or --auth-file, not both.")
    text, where = auth, "--auth"
    if auth_file is not None:
        where = f"--auth-file {auth_file}"
        if not auth_file.is_file() or auth_file.stat().st_size > MAX_AUTH_FILE_BYTES:
            raise UsageError(f"{where}: give a small file whose first line is USER:PASS.")
        lines = auth_file.read_text(encoding="utf-8", errors="replace").splitlines()
        text = lines[0].strip() if lines else ""
    if text is None:
        return None
    user, colon, password = text.partition(":")
    if not colon or not user or not password:
        raise UsageError(f"{where}: write USER:PASS (a user name, a colon, a password).")
    return user, password


def check_host(host: str, login: tuple[str, str] | None) -> None:
    """Refuse to serve beyond this machine without a login (checked before anything loads)."""
    if host not in LOOPBACK and login is None:
        raise UsageError(
            f"--host {host} opens the studio to other machines; add --auth USER:PASS or --auth-file FILE, "
            "or keep the default --host 127.0.0.1."
        )
