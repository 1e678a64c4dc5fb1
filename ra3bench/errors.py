"""User-facing errors: each becomes one clear line on stderr and an exit code, no traceback."""

from __future__ import annotations


class Ra3benchError(Exception):
    """Base of every error a user is meant to read. The message says what to do."""

    exit_code = 1


class UsageError(Ra3benchError):
    """Bad input: an unknown suite or task, a malformed file, a bad flag value."""

    exit_code = 2


class DataNotFoundError(Ra3benchError):
    """A suite's data file is nowhere to be found and cannot be downloaded."""

    exit_code = 2


class DataIntegrityError(Ra3benchError):
    """A data file is there but its sha256 is not the pinned one."""

    exit_code = 2


class SandboxUnavailableError(Ra3benchError):
    """The requested sandbox cannot start on this machine."""

    exit_code = 2


class SpecError(UsageError, ValueError):
    """An evaluation spec or config with values that cannot work (a ValueError for library callers)."""
