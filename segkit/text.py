"""Text from project files and file names made safe to show on one line and to write back."""

from __future__ import annotations

import unicodedata

#: control characters, and the line and paragraph separators that also break a line
_BREAKING = frozenset(("Cc", "Zl", "Zp"))


def is_control(char: str) -> bool:
    return unicodedata.category(char) in _BREAKING


def first_control(text: str) -> int | None:
    """Index of the first control character (NUL, newline, escape, ...) in ``text``, or None."""
    return next((i for i, char in enumerate(text) if is_control(char)), None)


def escaped_char(char: str) -> str:
    """``\\n`` as the four characters ``\\x0a``; what a terminal shows instead of acting on it."""
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every control character escaped, so it can neither break nor forge a line."""
    if first_control(text) is None:
        return text
    return "".join(escaped_char(char) if is_control(char) else char for char in text)
