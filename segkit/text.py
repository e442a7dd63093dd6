"""Text from project files and file names made safe to show on one line and to write back.

A name is not ours: it may hold bytes that are not UTF-8, a newline, an ANSI escape or a
right-to-left override. Printed raw, it breaks a one-line error in two or forges text that looks
like segkit's own. Every such text is shown through :func:`visible`; validation refuses control
characters in names with :func:`first_control`.
"""

from __future__ import annotations

import unicodedata

#: control characters, and the line and paragraph separators that also break a line
_BREAKING = frozenset(("Cc", "Zl", "Zp"))
#: Python keeps each undecodable byte of a file name as one of these lone surrogates (PEP 383).
BYTE_SURROGATES = range(0xDC80, 0xDD00)


def is_control(char: str) -> bool:
    return unicodedata.category(char) in _BREAKING


def first_control(text: str) -> int | None:
    """Index of the first control character (NUL, newline, escape, ...) in ``text``, or None."""
    return next((i for i, char in enumerate(text) if is_control(char)), None)


def escaped_char(char: str) -> str:
    """``char`` as a Python-style escape: a kept file-name byte as ``\\xNN``, others by code point."""
    code = ord(char)
    if code in BYTE_SURROGATES:
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def visible(text: str) -> str:
    """``text`` with undecodable file-name bytes and non-printable characters shown as escapes.

    Lone surrogates (non-UTF-8 file names) are rejected by a UTF-8 terminal, rich and JSON readers;
    a newline or escape sequence would break a one-line message or drive the terminal. The escape
    still tells the user which file or key is meant.
    """
    return "".join(char if char.isprintable() else escaped_char(char) for char in text)
