"""File names as messages show them, and filesystem loops turned into the user's error.

A file name is not ours: it may hold bytes that are not UTF-8, a newline, an ANSI escape or a
right-to-left override. Printed raw, such a name breaks the one-line error in two or forges text
that looks like segkit's own. Every file name in a message goes through :func:`shown_path`.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from segkit.errors import DataError
from segkit.text import BYTE_SURROGATES, escaped_char, visible

#: Escapes a quoted name uses for the control characters people know by sight.
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\", "'": "\\'"}


def _needs_quotes(text: str) -> bool:
    """Whether ``text`` holds anything beyond printable characters and non-UTF-8 bytes.

    A name shown unquoted never contains a backslash or a quote of its own, so ``\\xe9`` there can
    only be an escaped byte, and a quoted name can only have come from this function.
    """
    if text != text.strip():
        return True
    return any(
        char in "\\'" or not (char.isprintable() or ord(char) in BYTE_SURROGATES) for char in text
    )


def shown_path(path: Path | str) -> str:
    """A file name or path for a message: as is when plain, else in quotes with escapes (like ``repr``).

    ``img_00.png`` stays ``img_00.png`` (non-UTF-8 bytes become ``\\xNN``, as :func:`segkit.text.visible`);
    a name with a newline becomes ``'a\\nerror: b.png'``, so it can neither split the line nor pass for
    another message.
    """
    text = str(path)
    return quoted(text) if _needs_quotes(text) else visible(text)


def quoted(text: Path | str) -> str:
    """``text`` in single quotes, backslash, quote and non-printable characters escaped (like ``repr``)."""
    inner = "".join(
        _NAMED_ESCAPES.get(char) or (char if char.isprintable() else escaped_char(char)) for char in str(text)
    )
    return f"'{inner}'"


def is_loop(exc: BaseException) -> bool:
    """Whether ``exc`` reports a symbolic link loop: ELOOP, or pathlib's ``RuntimeError`` (Python < 3.13)."""
    if isinstance(exc, OSError):
        return exc.errno == errno.ELOOP
    return isinstance(exc, RuntimeError) and "loop" in str(exc).lower()


def loop_error(path: Path) -> DataError:
    return DataError(
        f"{shown_path(path)}: is a symbolic link loop (the link leads back to itself); "
        "fix or remove the link"
    )


def refuse_loop(path: Path) -> None:
    """Raise the one-line loop error when ``path`` is a symbolic link loop (``exists()`` only says False)."""
    try:
        path.stat()
    except OSError as exc:
        if is_loop(exc):
            raise loop_error(path) from None


def resolved(path: Path) -> Path:
    """``path.resolve()``, with a symbolic link loop on the way reported as the user's error."""
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:
        if is_loop(exc):
            raise loop_error(path) from None
        raise


def link_target(path: Path) -> str:
    """Where the symbolic link ``path`` points, for a message; ``?`` when it cannot be read."""
    try:
        return shown_path(os.readlink(path))
    except OSError:
        return "?"
