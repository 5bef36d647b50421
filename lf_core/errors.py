"""Errors a user can act on. Every message says what went wrong and what to do."""


class LFError(Exception):
    """Base class: the CLI prints `str(err)` on one line and exits with `err.exit_code`."""

    exit_code = 1


class BadInputError(LFError):
    """The file is not a usable image or video (empty, corrupt, too large, wrong type)."""

    exit_code = 3


class NoFaceError(LFError):
    """No face was found in the image."""

    exit_code = 4


class WeightsError(LFError):
    """A weights file is missing, of an unknown layout, or unsafe to load."""

    exit_code = 5


class DetectorMismatchError(WeightsError):
    """The detector was trained on codes of another projector or generator: its scores on
    this model's codes would mean nothing."""


class UnsafeCheckpointError(WeightsError):
    """A pickle asked to run code or import something outside the allow-list."""


class InvalidValueError(LFError, ValueError):
    """A value a function cannot use: a probability or prior outside (0, 1), codes or
    labels of the wrong shape."""
