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


class DiskFullError(LFError):
    """No space left on the disk (or over the quota) where a file was being written. The
    file was not written (nothing half-written is left); free some space and rerun: the
    resumable commands go on where they stopped."""

    exit_code = 6

    @classmethod
    def of(cls, err: BaseException, path=None) -> "DiskFullError | None":
        """The DiskFullError that `err` stands for: an OSError of a full disk, or an error
        raised while handling one (torch.save's cleanup fails on a full disk too); None
        for any other error."""
        import errno

        seen = []
        while err is not None and not (isinstance(err, OSError) and
                                       err.errno in (errno.ENOSPC, errno.EDQUOT)):
            seen.append(err)
            err = err.__cause__ or err.__context__
            if err in seen:
                return None
        if err is None:
            return None
        what = path or err.filename
        return cls(f"the disk is full: {what or 'a file'} could not be written "
                   f"({err.strerror or 'no space left'}). Free some space and run the command "
                   "again (lf extract, train, train-generator and bench go on where they "
                   "stopped)")


class InvalidValueError(LFError, ValueError):
    """A value a function cannot use: a probability or prior outside (0, 1), codes or
    labels of the wrong shape."""
