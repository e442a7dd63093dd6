"""One table from exception to line and exit code, applied where every command runs.

The huggingface_hub ``cli/_errors`` idea: each kind of failure is one row of :data:`ERRORS`; the
app's group (:class:`MappedGroup`) applies it around every command, and ``main()`` applies the
same rows to anything that escapes the app itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from segkit.data.load_failures import take_load_failure
from segkit.errors import ExitCode, SegkitError
from segkit.report.console import error_console
from segkit.text import visible

if TYPE_CHECKING:
    from typer._click.core import Context  # the type TyperGroup.invoke declares

DEBUG_ENV = "SEGKIT_DEBUG"


def debugging() -> bool:
    """``SEGKIT_DEBUG`` set to anything but empty, ``0`` or ``false``: tracebacks instead of lines."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false")


@dataclass(frozen=True)
class ErrorRule:
    """Exceptions of ``kind`` (for which ``applies`` holds) print ``message(exc)`` and exit ``code``."""

    kind: type[BaseException] | tuple[type[BaseException], ...]
    message: Callable[[Any], str]
    code: ExitCode = ExitCode.USAGE
    applies: Callable[[Any], bool] = lambda exc: True


def _internal(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"internal error: {exc.__class__.__name__}: {first} (run with --debug for the traceback)"


#: First matching row wins; the last row catches every other exception as our own bug.
ERRORS: tuple[ErrorRule, ...] = (
    ErrorRule(KeyboardInterrupt, lambda exc: "interrupted", ExitCode.INTERRUPTED),
    ErrorRule(SegkitError, lambda exc: f"error: {exc}"),  # exit code: the error's own exit_code
    ErrorRule(PermissionError, lambda exc: f"error: {exc.filename}: permission denied; choose a folder you can write to"),
    ErrorRule((FileNotFoundError, NotADirectoryError, IsADirectoryError),
              lambda exc: f"error: {exc.filename}: {exc.strerror}; check the path"),
    ErrorRule(OSError, lambda exc: f"error: {exc.filename}: {exc.strerror}", applies=lambda exc: bool(exc.filename)),
    ErrorRule(BaseException, _internal, ExitCode.INTERNAL),
)


def one_line(exc: BaseException) -> tuple[str, int]:
    """The message and exit code :data:`ERRORS` gives ``exc``.

    File names that are not UTF-8 are shown escaped (``\\xe9``): printing them raw would fail.
    """
    rule = next(r for r in ERRORS if isinstance(exc, r.kind) and r.applies(exc))
    code = exc.exit_code if isinstance(exc, SegkitError) else rule.code
    return visible(rule.message(exc)), code


def _unwrapped(exc: BaseException) -> BaseException:
    """The DataError behind a TensorFlow error, when a dataset loader raised one inside tf.data.

    ``model.fit``/``evaluate`` decode files in ``tf.numpy_function``, whose exceptions reach us
    only as a TensorFlow ``UnknownError`` wrapping a traceback; the loader kept the original.
    """
    if type(exc).__module__.startswith("tensorflow"):
        kept = take_load_failure()
        if kept is not None:
            return kept
    return exc


def report(exc: BaseException) -> int | None:
    """Print ``exc`` as its one line and return the exit code; None under ``SEGKIT_DEBUG``/``--debug``,
    where the caller re-raises it for the traceback (an interrupt is always just reported)."""
    if debugging() and not isinstance(exc, KeyboardInterrupt):
        return None
    message, code = one_line(_unwrapped(exc))
    error_console.print(message, markup=False, soft_wrap=True)
    return code


class MappedGroup(TyperGroup):
    """The app's command group: every command (and the root callback) runs under :data:`ERRORS`."""

    def invoke(self, ctx: Context) -> Any:
        take_load_failure()  # a failure left by an earlier command in this process is not ours
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # click's own: an exit code already chosen, or a usage error it prints itself
        except (Exception, KeyboardInterrupt) as exc:  # the one place failures become lines
            code = report(exc)
            if code is None:
                raise
            raise typer.Exit(code) from None
