"""Known members of each category: what a new concept must not turn out to be (the novelty metric)."""

from __future__ import annotations

from pathlib import Path

from conceptlab.engine.errors import UsageError

KNOWN_MEMBERS: dict[str, tuple[str, ...]] = {
    "pet": ("cat", "dog", "hamster", "rabbit", "parrot", "goldfish", "turtle", "ferret", "guinea pig", "lizard"),
    "plant": ("cactus", "fern", "tree", "flower", "rose", "moss", "bamboo", "ivy", "palm", "succulent"),
    "fruit": ("apple", "banana", "orange", "mango", "grape", "pear", "cherry", "lemon", "strawberry", "peach"),
    "furniture": ("chair", "table", "sofa", "bed", "desk", "lamp", "shelf", "stool", "wardrobe", "bench"),
    "musical instrument": ("guitar", "piano", "violin", "drum", "flute", "trumpet", "harp", "cello", "saxophone"),
}


def known_members(category: str) -> tuple[str, ...]:
    """The built-in members of `category`, or () when there is no list for it."""
    return KNOWN_MEMBERS.get(category.strip().lower(), ())


def read_vocabulary(path: Path) -> tuple[str, ...]:
    """One word a line; blank lines and `#` comments are skipped."""
    if not path.is_file():
        raise UsageError(f"--vocab {path}: no such file; give a text file with one known member a line.")
    words = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    words = [word for word in words if word]
    if not words:
        raise UsageError(f"--vocab {path} lists no words; write one known member a line.")
    return tuple(dict.fromkeys(words))
