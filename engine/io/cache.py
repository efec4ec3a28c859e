"""Where conceptlab keeps what it can rebuild: tiny models, rendered parent images."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$CONCEPTLAB_CACHE`, else `$XDG_CACHE_HOME/conceptlab`, else `~/.cache/conceptlab`."""
    if os.environ.get("CONCEPTLAB_CACHE"):
        return Path(os.environ["CONCEPTLAB_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "conceptlab"
