"""Errors a user can act on. The command line prints their message, without a traceback, and exits 2."""


class VaeLibError(Exception):
    """Base class: the message says what was wrong and what to do."""


class DataError(VaeLibError):
    """A dataset file is missing, corrupt, or the dataset name is unknown."""


class ConfigError(VaeLibError):
    """A setting is out of range, unknown, or conflicts with an existing run."""


class TrainingError(VaeLibError):
    """Training cannot go on (for example the loss became NaN); the last good checkpoint is kept."""


def check_choice(kind: str, name, choices, error=ConfigError):
    """``name`` if it is one of ``choices``, else ``error`` saying which ones there are."""
    if name not in choices:
        raise error(f"Unknown {kind} {name!r}. Choose one of: {', '.join(map(str, choices))}.")
    return name
