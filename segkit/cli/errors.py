"""Mapping exceptions to one line and an exit code (the huggingface_hub ``cli/_errors`` idea)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from segkit.data.pipeline import take_load_failure
from segkit.data.images import printable
from segkit.errors import SegkitError
from segkit.report.console import error_console

F = TypeVar("F", bound=Callable[..., Any])
DEBUG_ENV = "SEGKIT_DEBUG"


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0", "false")


def one_line(exc: BaseException) -> tuple[str, int]:
    """The message and exit code shown for ``exc``: 2 for the user's errors, 1 for ours.

    File names that are not UTF-8 are shown escaped (``\\xe9``): printing them raw would fail.
    """
    message, code = _line(exc)
    return printable(message), code


def _line(exc: BaseException) -> tuple[str, int]:
    if isinstance(exc, SegkitError):
        return f"error: {exc}", exc.exit_code
    if isinstance(exc, PermissionError):
        return f"error: {exc.filename}: permission denied; choose a folder you can write to", 2
    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return f"error: {exc.filename}: {exc.strerror}; check the path", 2
    if isinstance(exc, OSError) and exc.filename:
        return f"error: {exc.filename}: {exc.strerror}", 2
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"internal error: {exc.__class__.__name__}: {first} (run with --debug for the traceback)", 1


def _unwrapped(exc: Exception) -> Exception:
    """The DataError behind a TensorFlow error, when a dataset loader raised one inside tf.data.

    ``model.fit``/``evaluate`` decode files in ``tf.numpy_function``, whose exceptions reach us
    only as a TensorFlow ``UnknownError`` wrapping a traceback; the loader kept the original.
    """
    if type(exc).__module__.startswith("tensorflow"):
        kept = take_load_failure()
        if kept is not None:
            return kept
    return exc


def mapped(command: F) -> F:
    """Run a command so that errors print one line (a traceback only with --debug)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        take_load_failure()  # a failure left by an earlier command in this process is not ours
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            error_console.print("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - the one place every failure is turned into a line
            if debugging():
                raise
            message, code = one_line(_unwrapped(exc))
            error_console.print(message, markup=False, soft_wrap=True)
            raise typer.Exit(code) from None

    return wrapper  # type: ignore[return-value]
