"""Errors a user can act on. ``segkit.cli.main`` turns each into one line and an exit code."""

from __future__ import annotations

from segkit.text import visible


class SegkitError(Exception):
    """Base of every error that is the user's to fix; printed as one line, exit code 2."""

    exit_code = 2


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
