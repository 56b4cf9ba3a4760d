"""Errors a user sees as one line: what went wrong, where, and what to do."""


class AwardwatchError(Exception):
    """Base of every error the CLI reports as one line instead of a traceback."""


class InputError(AwardwatchError):
    """A file or response that cannot be read as the feed it claims to be."""


class WarehouseError(AwardwatchError):
    """The warehouse cannot be opened or written (busy, read-only, corrupt)."""


class PermanentError(AwardwatchError):
    """An error that retrying cannot fix (HTTP 4xx, connection refused): Prefect tasks do not retry it."""


class UsageError(InputError):
    """A command's arguments cannot work (an unknown agency, a reversed range): exit status 2, before any work."""
