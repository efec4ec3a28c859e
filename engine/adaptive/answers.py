"""Turn an oracle's free-text answer into a new negative word, or nothing."""

from __future__ import annotations

import re

from conceptlab.engine.errors import BackendError

LEADING_WORDS = ("a", "an", "the", "some", "this", "it", "is", "its")
MAX_WORDS = 3
APOSTROPHES = "['\u2019]"
"""A straight or a typographic apostrophe."""
NON_ANSWERS = ("none", "nothing", "unknown", "unsure", "unclear", "no", "yes", "n a")
"""Whole answers (normalized) that name nothing: a VQA model says these when it cannot tell."""
NON_ANSWER_PHRASES = ("not sure", "dont know", "do not know", "no idea", "cant tell", "cannot tell")
"""Phrases that make any answer holding them a non-answer ("i'm not sure", "i don't know")."""


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
    """Lower case, possessive 's and apostrophes dropped, punctuation stripped, leading articles dropped, last
    word made singular: "The dog's." -> "dog", "I don't know" -> "i dont know"."""
    text = re.sub(APOSTROPHES + r"s\b", "", answer.lower())
    text = re.sub(APOSTROPHES, "", text)
    words = re.sub(r"[^a-z0-9\s-]", " ", text).split()
    while words and words[0] in LEADING_WORDS:
        words = words[1:]
    if words:
        words[-1] = singular(words[-1])
    return " ".join(words)


def is_non_answer(word: str) -> bool:
    """True for a normalized answer that names nothing ("none", "unknown", "i dont know")."""
    padded = f" {word} "
    return word in NON_ANSWERS or any(f" {phrase} " in padded for phrase in NON_ANSWER_PHRASES)


def new_negative(answer: str, category: str | None, known: list[str]) -> str | None:
    """The normalized answer if it names something new: not empty, not a non-answer, not the category, not a
    known negative."""
    word = normalize_answer(answer)
    if not word or not re.search(r"[a-z]", word) or len(word.split()) > MAX_WORDS or is_non_answer(word):
        return None
    taken = {normalize_answer(item) for item in [*known, category or ""]}
    return None if word in taken else word


MAX_ANSWER_CHARS = 200
"""An answer names a thing in a few words; past this many characters the rest is cut before it is cleaned, so an
oracle's megabyte reply neither slows the cleaning nor reaches a record or the terminal whole."""


def checked_answers(raw: object, oracle: object) -> list[str]:
    """An oracle's reply as a list of answers, each cut to `MAX_ANSWER_CHARS`; anything but a list of texts (None,
    a number, a list of lists) is a `BackendError` naming the oracle, never an AttributeError later."""
    if not isinstance(raw, list | tuple) or not all(isinstance(answer, str) for answer in raw):
        name = getattr(oracle, "name", type(oracle).__name__)
        shown = type(raw).__name__ if not isinstance(raw, list | tuple) else "a list holding non-text"
        raise BackendError(f"oracle {name} answered {shown}; an oracle returns a list of text answers, one per image.")
    return [answer[:MAX_ANSWER_CHARS] for answer in raw]
