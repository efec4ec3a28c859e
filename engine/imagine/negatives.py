"""The negative list of one image: given words first, then the oracle's answers as it names them.

Our cleaner, not the official one (that is `official.clean_vqa_answer`, the preset's): filler such as "it is" or
"appears to be" dropped anywhere, lists split on ",", "and", "or" into separate negatives, each normalised by the
same rules as `create --adaptive` (`adaptive.answers`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from conceptlab.engine.adaptive.answers import new_negative

FILLER = (
    "it appears to be",
    "it looks like",
    "it seems to be",
    "appears to be",
    "seems to be",
    "looks like",
    "there is",
    "there are",
    "i can see",
    "i see",
    "it is",
    "this is",
    "that is",
)
"""Phrases a VQA model wraps its answer in (the reference's list, longest first)."""
SEPARATORS = re.compile(r",|;|&|\band\b|\bor\b")


def answer_parts(answer: str) -> list[str]:
    """The things one raw answer names: "It appears to be a cat and a dog" -> ["a cat", "a dog"]."""
    text = answer.strip().lower()
    for phrase in FILLER:
        text = re.sub(rf"\b{phrase}\b", " ", text)
    return [part.strip() for part in SEPARATORS.split(text) if part.strip()]


class NegativeEntries:
    """What both negative lists (ours and the preset's official one) share: the entries, each with the first step
    whose guidance uses it (given ones: step 0) and, once cleared, the step it stopped acting at."""

    given: tuple[str, ...]
    entries: list[dict[str, object]]

    def __post_init__(self) -> None:
        for word in self.given:
            self.entries.append({"word": word, "step": 0, "source": "given"})

    @property
    def words(self) -> list[str]:
        return [str(entry["word"]) for entry in self.entries if "until" not in entry]

    def prompt(self) -> str:
        """The negative prompt: the words joined with ", " (as the reference code joins them)."""
        return ", ".join(self.words)


@dataclass
class NegativeList(NegativeEntries):
    """The negatives of one image, each with the first step whose guidance uses it (given ones: step 0)."""

    category: str
    given: tuple[str, ...] = ()
    limit: int | None = None
    main_object: str | None = None
    """Appended to each oracle word ("cat" -> "cat pet"), as the official `--main_object`."""
    entries: list[dict[str, object]] = field(default_factory=list)

    def add_answers(self, answers: list[str], step: int) -> list[str]:
        """Add what the answers name and is new (not the category, not known, not a non-answer), up to the limit;
        return the added words."""
        added = []
        for answer in answers:
            for part in answer_parts(answer):
                if self.limit is not None and len(self.entries) >= self.limit:
                    return added
                word = new_negative(part, self.category, self.words)
                if word is not None and self.main_object:
                    word = None if f"{word} {self.main_object}" in self.words else f"{word} {self.main_object}"
                if word is not None:
                    self.entries.append({"word": word, "step": step, "source": "oracle"})
                    added.append(word)
        return added

    def clear(self, step: int) -> None:
        """`--clear-at-stop`: the oracle's words stop acting from `step` on; the given ones stay."""
        for entry in self.entries:
            if entry["source"] != "given":
                entry.setdefault("until", step)
