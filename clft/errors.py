"""Errors that the CLI reports as one line (exit status 2) instead of a traceback."""


class ClftError(Exception):
    """Base class: a user-facing problem with a one-line explanation."""

    exit_code = 2


class ConfigError(ClftError):
    """An experiment file, override or plugin option is wrong."""


class DataError(ClftError):
    """A data file is missing, unreadable or inconsistent."""


class DivergenceError(ClftError):
    """The loss became NaN or infinite."""

    exit_code = 3


class CheckpointError(ClftError):
    """A checkpoint cannot be used to resume this run."""


class ClftWarning(UserWarning):
    """Something the user should know that does not stop the command (``clft: warning: ...``, one line)."""
