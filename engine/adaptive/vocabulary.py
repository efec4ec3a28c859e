"""Built-in word lists: known members of common categories and art styles (for oracles and metrics)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from conceptlab.engine.errors import UsageError
from conceptlab.engine.io.records import record_bytes

MAX_VOCABULARY_BYTES = 16 * 1024 * 1024
"""A vocabulary is a list of words: megabytes at most."""

CATEGORY_MEMBERS: dict[str, tuple[str, ...]] = {
    "pet": (
        "cat", "dog", "hamster", "rabbit", "parrot", "goldfish", "turtle", "ferret", "guinea pig", "mouse",
        "lizard", "snake", "canary", "hedgehog", "chinchilla", "frog", "pony", "budgie", "gerbil", "rat",
    ),
    "plant": (
        "cactus", "fern", "tree", "flower", "rose", "moss", "bamboo", "ivy", "succulent", "orchid",
        "tulip", "sunflower", "palm", "bonsai", "lily", "grass", "shrub", "aloe", "daisy", "vine",
    ),
    "fruit": (
        "apple", "banana", "orange", "mango", "grape", "pear", "cherry", "lemon", "strawberry", "pineapple",
        "watermelon", "peach", "plum", "kiwi", "coconut", "papaya", "blueberry", "lime", "fig", "pomegranate",
    ),
    "furniture": (
        "chair", "table", "sofa", "bed", "desk", "lamp", "shelf", "stool", "cabinet", "dresser",
        "bench", "armchair", "wardrobe", "bookcase", "ottoman", "couch", "nightstand", "crib", "futon", "recliner",
    ),
    "musical instrument": (
        "guitar", "piano", "violin", "drum", "flute", "trumpet", "harp", "cello", "saxophone", "clarinet",
        "accordion", "banjo", "ukulele", "trombone", "harmonica", "xylophone", "tuba", "oboe", "bagpipes", "sitar",
    ),
    "garment": (
        "shirt", "dress", "jacket", "coat", "sweater", "skirt", "trousers", "jeans", "scarf", "hoodie",
        "blouse", "suit", "vest", "kimono", "cardigan", "shorts", "poncho", "tunic", "gown", "overalls",
    ),
    "vehicle": (
        "car", "bicycle", "bus", "truck", "motorcycle", "train", "scooter", "van", "tractor", "boat",
        "airplane", "helicopter", "tram", "taxi", "jeep", "ambulance", "skateboard", "submarine", "rickshaw", "sled",
    ),
}  # fmt: skip

ART_STYLES: tuple[str, ...] = (
    "impressionism", "cubism", "surrealism", "pop art", "watercolor", "pixel art", "art nouveau", "baroque",
    "expressionism", "minimalism", "ukiyo-e", "anime", "pointillism", "renaissance", "abstract", "realism",
    "oil painting", "pencil sketch", "graffiti", "art deco",
)  # fmt: skip


class NoVocabulary(UsageError):
    """A category with no built-in list of members, and no vocabulary file given: a command without `--vocab`
    catches this one to name its own way out."""


def known_members(category: str, members: Mapping[str, tuple[str, ...]] | None = None) -> tuple[str, ...]:
    """The members of `category` in `members` (default: the built-in lists), or () when there is no list for it."""
    return (CATEGORY_MEMBERS if members is None else members).get(category.strip().lower(), ())


def read_vocabulary(path: Path) -> tuple[str, ...]:
    """One word a line; blank lines and `#` comments are skipped."""
    if not os.path.lexists(path):
        raise UsageError(f"--vocab {path}: no such file; give a text file with one word a line.")
    try:
        lines = (
            record_bytes(path, MAX_VOCABULARY_BYTES, "; give a text file with one word a line").decode().splitlines()
        )
    except UnicodeDecodeError as error:
        raise UsageError(f"Cannot read --vocab {path}: {getattr(error, 'strerror', None) or error}.") from None
    words = [word for word in (line.split("#", 1)[0].strip() for line in lines) if word]
    if not words:
        raise UsageError(f"--vocab {path} lists no words; write one word a line.")
    return tuple(dict.fromkeys(words))


def vocabulary_for(
    category: str | None,
    style: bool = False,
    vocab_file: Path | None = None,
    members: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[str, ...]:
    """The words an oracle compares against: `vocab_file` (one word per line), else the category's list in `members`
    (the words a backend's models know, where it says), else the built-in list."""
    if vocab_file is not None:
        return read_vocabulary(vocab_file)
    if style:
        return ART_STYLES
    words = known_members(category or "", members) or known_members(category or "")
    if not words:
        known = ", ".join(CATEGORY_MEMBERS)
        raise NoVocabulary(f"No built-in vocabulary for category {category!r} (known: {known}); give --vocab FILE.")
    return words
