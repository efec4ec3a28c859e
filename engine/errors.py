"""The errors the engine raises: each message is one line that names the problem and the fix."""


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
