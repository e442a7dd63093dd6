"""Errors a user can act on, and the exit codes. ``segkit.cli.errors`` turns each error into one line."""

from __future__ import annotations

from enum import IntEnum

from segkit.text import visible


class ExitCode(IntEnum):
    """Every exit status segkit gives; the shell sees the numbers."""

    OK = 0
    INTERNAL = 1  # our own bug: "internal error: ..."
    USAGE = 2  # the user's to fix: a project file, an option, a file on disk (click's usage errors too)
    SOME_FAILED = 3  # a cohort ran to its end, and some of its slides failed (its table says why)
    INTERRUPTED = 130  # SIGINT, 128 + 2 as shells report it
    TERMINATED = 143  # SIGTERM, 128 + 15


class SegkitError(Exception):
    """Base of every error that is the user's to fix; printed as one line, exit code 2."""

    exit_code: int = ExitCode.USAGE


class ProjectError(SegkitError):
    """A project file (or ``--set`` override) is malformed, mistyped or refers to something missing."""

    def __init__(self, source: str, key: str, problem: str, hint: str = "") -> None:
        self.source = source
        self.key = key
        self.problem = problem
        self.hint = hint
        # a key or file name from the file may hold a newline: escaped, the error stays one line
        where = f"{visible(source)}: {visible(key)}" if key else visible(source)
        message = f"{where}: {problem}"
        if hint:
            message = f"{message} ({hint})"
        super().__init__(message)


class DataError(SegkitError):
    """An image or mask file, or a folder of them, cannot be used as it is."""


class PluginError(SegkitError):
    """A plugin is unknown, failed to load, or registered a name another plugin already has."""


class RunStateError(SegkitError):
    """The run folder is not in the state the command needs (no model yet, a run already there)."""


class TrainingDiverged(SegkitError):
    """The loss became NaN or infinite: the run is stopped, one line and exit code 1 (nothing valid came of it)."""

    exit_code = 1
