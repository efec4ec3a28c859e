"""Turn an oracle's free-text answer into a new negative word, or nothing."""

from __future__ import annotations

import re

LEADING_WORDS = ("a", "an", "the", "some", "this", "it", "is", "its")
MAX_WORDS = 3


def singular(word: str) -> str:
    """A plain English singular, enough to tell "cats" and "cat" apart from "cactus" and "cacti"."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def normalize_answer(answer: str) -> str:
    """Lower case, punctuation stripped, leading articles dropped, last word made singular."""
    words = re.sub(r"[^a-z0-9\s-]", " ", answer.lower()).split()
    while words and words[0] in LEADING_WORDS:
        words = words[1:]
    if words:
        words[-1] = singular(words[-1])
    return " ".join(words)


def new_negative(answer: str, category: str | None, known: list[str]) -> str | None:
    """The normalized answer if it names something new: not empty, not the category, not a known negative."""
    word = normalize_answer(answer)
    if not word or not re.search(r"[a-z]", word) or len(word.split()) > MAX_WORDS:
        return None
    taken = {normalize_answer(item) for item in [*known, category or ""]}
    return None if word in taken else word
