"""Errors the CLI reports as one line with exit code 2 (bad arguments, inputs or sweep state)."""


class UsageError(ValueError):
    """A bad argument, input file or sweep state; the message is one line."""


class SweepError(UsageError):
    """A sweep that cannot start, resume or be read; one line."""


class StorageFullError(Exception):
    """The filesystem a run writes to is full (ENOSPC); one line naming it. Exit code 1: nothing was wrong
    with the input, and the same command completes once space is freed."""
