"""Errors a user can act on. The command line prints their message, without a traceback, and exits 2."""


class VaeLibError(Exception):
    """Base class: the message says what was wrong and what to do."""


class DataError(VaeLibError):
    """Data that cannot be used: a dataset file is missing or corrupt, the dataset name is unknown,
    or images do not fit the model (their shape, or pixel values outside the likelihood's range)."""


class ConfigError(VaeLibError):
    """A setting is out of range, unknown, or conflicts with an existing run."""


class TrainingError(VaeLibError):
    """Training cannot go on (for example the loss became NaN); the last good checkpoint is kept."""


def check_count(kind: str, value, minimum: int = 1, error=ConfigError) -> int:
    """``value`` as an int if it is a whole number of at least ``minimum``, else ``error`` (a
    count given as 5.7 is refused, not cut to 5)."""
    try:
        whole = int(value)
        ok = whole == value and not isinstance(value, bool)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok or whole < minimum:
        raise error(f"The {kind} must be a whole number of at least {minimum}, got {value!r}.")
    return whole


def check_choice(kind: str, name, choices, error=ConfigError):
    """``name`` if it is one of ``choices``, else ``error`` saying which ones there are."""
    if name not in choices:
        raise error(f"Unknown {kind} {name!r}. Choose one of: {', '.join(map(str, choices))}.")
    return name
