"""The negatives in force at each step: given ones (at once, or one at a time) and those an oracle adds."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Negative:
    word: str
    step: int
    """The step after which it applies (0: from the start)."""
    source: str
    """`given`, `gradual` (given, added on a schedule) or `oracle` (named by the oracle from the images)."""


class NegativeSchedule:
    """Tracks which negatives apply; the concept's metadata records `records()`."""

    def __init__(
        self,
        given: tuple[str, ...],
        *,
        gradual: bool,
        interval: int,
        seed: int = 0,
        on_add: Callable[[Negative], None] | None = None,
    ):
        """`gradual`: as the official code (`training/coach.py`), the given words are shuffled (here with `seed`),
        the first applies from the start and one more after every `interval` steps (its image/oracle interval)."""
        self.on_add = on_add
        self.active: list[Negative] = []
        self._pending: list[Negative] = []
        if gradual:
            order = list(given)
            random.Random(seed).shuffle(order)
            self._pending = [Negative(word, index * interval, "gradual") for index, word in enumerate(order)]
        else:
            self.active = [Negative(word, 0, "given") for word in given]

    @property
    def words(self) -> list[str]:
        return [negative.word for negative in self.active]

    def activate(self, step: int) -> list[str]:
        """Move the gradual negatives due by `step` into force; returns their words."""
        due = [negative for negative in self._pending if negative.step <= step]
        self._pending = [negative for negative in self._pending if negative.step > step]
        self._extend(due)
        return [negative.word for negative in due]

    def add(self, words: list[str], step: int, source: str = "oracle") -> list[str]:
        """Add `words` not already in force; returns those added."""
        added = [word for word in dict.fromkeys(words) if word not in self.words]
        self._extend([Negative(word, step, source) for word in added])
        return added

    def _extend(self, negatives: list[Negative]) -> None:
        self.active.extend(negatives)
        for negative in negatives if self.on_add else ():
            self.on_add(negative)

    def restore(self, records: list[dict]) -> None:
        """Return to a saved `records()` (resuming a run): those in force, and the gradual ones still to come."""
        self.active = [Negative(r["word"], r["step"], r.get("source", "given")) for r in records]
        self._pending = [negative for negative in self._pending if negative.word not in self.words]

    def records(self) -> list[dict]:
        return [asdict(negative) for negative in self.active]
