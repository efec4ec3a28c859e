"""Every path the studio's page can name is a name relative to `--root`, confined inside it.

The page only ever offers names from the server's own listing, but a crafted request can send any string: each
one is resolved here (symlinks followed) and refused in one line unless it stays inside the root.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from conceptlab.engine.errors import UsageError


def confined(root: Path, name: str) -> Path:
    """`root / name` with symlinks resolved, refused unless it is inside `root` (absolute names, `..`, a symlink
    that leads out and an empty name are all refused)."""
    text = str(name or "").strip()
    if not text:
        raise UsageError("No path given; choose one from the studio's library.")
    pure = PurePosixPath(text.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or "\x00" in text:
        raise UsageError(f"{text!r} is not a name inside the studio's --root; choose one from its library.")
    base = Path(root).resolve()
    resolved = (base / pure).resolve()
    if resolved != base and base not in resolved.parents:
        raise UsageError(f"{text!r} leads outside the studio's --root; choose one from its library.")
    return resolved


def relative_name(root: Path, path: Path) -> str:
    """How the page names `path`: relative to `root`, with forward slashes."""
    return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()


def unused_name(root: Path, base: str) -> str:
    """`base`, or `base-2`, `base-3`, ... : the first name under `root` that nothing holds yet (a slug of `base`)."""
    slug = "-".join(part for part in "".join(c if c.isalnum() or c in "-_/" else "-" for c in base).split("-") if part)
    slug = slug.strip("/") or "run"
    name, number = slug, 1
    while (Path(root) / name).exists():
        number += 1
        name = f"{slug}-{number}"
    return name
