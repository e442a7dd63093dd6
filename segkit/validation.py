"""Checking a TOML table against a tuple of :class:`~segkit.options.Option` records."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segkit.data.names import resolved
from segkit.errors import ProjectError
from segkit.options import Option
from segkit.text import escaped_char, first_control

#: bound of integers whose option declares no maximum: what TensorFlow's int32 shapes and sizes hold
INT_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class Context:
    """Where values come from: the project file (for messages and relative paths) and overrides."""

    source: Path
    #: key paths set with ``--set``; their relative paths resolve against the working folder
    overridden: frozenset[str] = frozenset()

    def fail(self, key: str, problem: str, hint: str = "") -> ProjectError:
        if self.from_override(key):  # the file is fine: say where the bad value came from
            problem = f"{problem}, given with --set"
        return ProjectError(str(self.source), key, problem, hint)

    def from_override(self, key: str) -> bool:
        """``key`` was set with ``--set``, or lies inside or above a key that was."""
        return any(key == set_key or key.startswith(f"{set_key}.") or set_key.startswith(f"{key}.")
                   for set_key in self.overridden)

    def base_for(self, key: str) -> Path:
        return Path.cwd() if key in self.overridden else self.source.parent


def suggestion(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(known)) or 'none'}"


def _shown(value: Any) -> str:
    """``value`` as the file wrote it, cut short: 10**400 is not worth 400 digits in a message."""
    shown = repr(value)
    return shown if len(shown) <= 80 else f"{shown[:40]}... ({len(shown)} characters)"


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def _integer(value: Any, key: str, ctx: Context) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.fail(key, f"expected an integer, got {_type_name(value)} ({_shown(value)})")
    return value


def _number(value: Any, key: str, ctx: Context) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ctx.fail(key, f"expected a number, got {_type_name(value)} ({_shown(value)})")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float: 10**400
        number = math.inf
    # TOML has nan and inf literals; either would train silently into NaN weights or never stop
    if not math.isfinite(number):
        raise ctx.fail(key, f"expected a finite number, got {_shown(value)}", "write an ordinary number, e.g. 0.001")
    return number


def _boolean(value: Any, key: str, ctx: Context) -> bool:
    if not isinstance(value, bool):
        raise ctx.fail(key, f"expected true or false, got {_type_name(value)} ({_shown(value)})")
    return value


def text(value: Any, key: str, ctx: Context) -> str:
    """A string without control characters: a NUL ends file names early, a newline splits output
    lines and records that are read back (``project.resolved.toml``)."""
    if not isinstance(value, str):
        raise ctx.fail(key, f"expected a string, got {_type_name(value)} ({_shown(value)})")
    at = first_control(value)
    if at is not None:
        raise ctx.fail(key, f"contains the control character {escaped_char(value[at])} at position {at}",
                       "remove it; names and paths must be printable text")
    return value


def _int_or_pair(value: Any, key: str, ctx: Context) -> list[int]:
    if isinstance(value, list) and len(value) == 2:
        return [_integer(v, key, ctx) for v in value]
    if isinstance(value, list):
        raise ctx.fail(key, f"expected an integer or a pair [a, b], got an array of {len(value)}")
    number = _integer(value, key, ctx)
    return [number, number]


def _color(value: Any, key: str, ctx: Context) -> list[int]:
    if not (isinstance(value, list) and len(value) == 3):
        raise ctx.fail(key, f"expected a colour [r, g, b], got {_shown(value)}")
    channels = [_integer(v, key, ctx) for v in value]
    if any(not 0 <= c <= 255 for c in channels):
        raise ctx.fail(key, f"colour channels must be 0..255, got {_shown(value)}")
    return channels


def _str_list(value: Any, key: str, ctx: Context) -> list[str]:
    if not isinstance(value, list):
        raise ctx.fail(key, f"expected an array of strings, got {_type_name(value)} ({_shown(value)})")
    return [text(v, key, ctx) for v in value]


def _path(value: Any, key: str, ctx: Context) -> Path:
    written = text(value, key, ctx)
    if not written:
        raise ctx.fail(key, "expected a path, got an empty string")
    path = Path(written).expanduser()
    return resolved(path if path.is_absolute() else ctx.base_for(key) / path)  # a link loop: one line


def _folder(value: Any, key: str, ctx: Context) -> Path:
    path = _path(value, key, ctx)
    if not path.exists():
        raise ctx.fail(key, f"folder {path} does not exist", "create it or fix the path")
    if not path.is_dir():
        raise ctx.fail(key, f"{path} is a file, not a folder", "point it at the folder that holds the files")
    return path


_COERCE: dict[str, Callable[[Any, str, Context], Any]] = {
    "int": _integer, "float": _number, "bool": _boolean, "str": text, "int_or_pair": _int_or_pair,
    "color": _color, "str_list": _str_list, "path": _path, "dir": _folder,
}


def _bound(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _bounded(option: Option, value: Any, key: str, ctx: Context) -> Any:
    maximum = option.maximum
    if maximum is None and option.kind in ("int", "int_or_pair"):
        maximum = INT_LIMIT  # a plugin's int without a bound still must not reach TensorFlow as 10**30
    for number in value if option.kind == "int_or_pair" else [value] if option.kind in ("int", "float") else []:
        if option.minimum is not None and number < option.minimum:
            raise ctx.fail(key, f"must be at least {_bound(option.minimum)}, got {_shown(value)}")
        if maximum is not None and number > maximum:
            raise ctx.fail(key, f"must be at most {_bound(maximum)}, got {_shown(value)}")
    if option.choices and value not in option.choices:
        close = difflib.get_close_matches(str(value), option.choices, n=1)
        hint = f"did you mean '{close[0]}'?" if close else ""
        raise ctx.fail(key, f"must be one of {', '.join(option.choices)}; got {_shown(value)}", hint)
    return value


def coerce(option: Option, value: Any, key: str, ctx: Context) -> Any:
    """One value checked against its option, normalised (pairs as lists, paths resolved)."""
    if option.kind == "table":
        if not isinstance(value, Mapping):
            raise ctx.fail(key, f"expected a table, got {_type_name(value)} ({_shown(value)})")
        return validate_table(value, option.fields, key, ctx)
    return _bounded(option, _COERCE[option.kind](value, key, ctx), key, ctx)


def validate_table(
    raw: Mapping[str, Any], options: Sequence[Option], prefix: str, ctx: Context
) -> dict[str, Any]:
    """Validated copy of ``raw`` with defaults filled in; unknown keys and bad values raise."""
    known = {o.name: o for o in options}
    for name in raw:
        if name not in known:
            raise ctx.fail(_join(prefix, name), "unknown key", suggestion(name, list(known)))
    result: dict[str, Any] = {}
    for option in options:
        key = _join(prefix, option.name)
        if option.name in raw:
            result[option.name] = coerce(option, raw[option.name], key, ctx)
        elif option.required:
            raise ctx.fail(key, "is required but missing", option.help)
        else:
            result[option.name] = _default(option, key, ctx)
    return result


def _default(option: Option, key: str, ctx: Context) -> Any:
    """The option's default, checked and normalised like a written value (``7`` becomes ``[7, 7]``,
    a list a fresh copy); ``None`` means "not set", and a table of defaults is filled in."""
    if option.default is not None:
        return coerce(option, option.default, key, ctx)
    if option.kind == "table" and _all_defaulted(option):
        return validate_table({}, option.fields, key, ctx)
    return None


def _all_defaulted(option: Option) -> bool:
    return all(not f.required for f in option.fields)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
