"""The errors the engine raises: each message is one line that names the problem and the fix."""

import re


class ConceptLabError(Exception):
    """Base class; `exit_code` is what the command line exits with."""

    exit_code = 1


class UsageError(ConceptLabError):
    """Bad arguments: a value out of range, an inconsistent list, an output that already exists."""

    exit_code = 2


class ConceptFileError(ConceptLabError):
    """A concept file that cannot be read, is not a concept, or does not fit the model."""

    exit_code = 2


class BackendError(ConceptLabError):
    """A backend or model that cannot be found or loaded."""


class TrainingError(ConceptLabError):
    """Training could not go on (for example, the loss became NaN)."""


def short_reason(error: BaseException, limit: int = 160) -> str:
    """A wrapped library error in a few words: its first sentence, else cut at a word boundary with "…".

    Library messages run to several sentences and lines ("Cannot find an appropriate cached snapshot folder for
    the specified revision on the local disk and outgoing traffic has been disabled. To enable ..."); one line of
    ours quotes only their gist, never a word cut in half.
    """
    text = " ".join(str(error).split()) or type(error).__name__
    sentence = re.match(r"(.+?[.!?])(?:\s|$)", text)
    if sentence and len(sentence.group(1)) <= limit:
        return sentence.group(1).rstrip(".")
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,;:") + "…"
