"""Declarative schemas for TOML keys, shared by the core sections and every plugin.

A plugin lists its own keys as :class:`Option` records in its spec; the project loader validates
them exactly like the core's own keys, so an unknown or mistyped plugin key is reported with its
full key path before TensorFlow is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

OptionKind = Literal[
    "int", "float", "bool", "str", "int_or_pair", "color", "str_list", "path", "dir", "table"
]

#: Marks an option without a default: the key must be given.
REQUIRED: Any = object()


@dataclass(frozen=True)
class Option:
    """One TOML key: its name, kind, default and a one-line help.

    ``kind`` is one of: ``int``, ``float`` (ints accepted), ``bool``, ``str``, ``int_or_pair``
    (``7`` or ``[7, 5]``, normalised to a pair), ``color`` (``[r, g, b]`` in 0..255), ``str_list``,
    ``path`` (resolved against the project file's folder), ``dir`` (a path that must be an
    existing folder) and ``table`` (a sub-table whose keys are ``fields``).

    Give every ``int`` a ``maximum`` its builder can take (one without is bounded at 2**31 - 1);
    floats must be finite and strings free of control characters whatever the option says.

    Example::

        Option("base_filters", "int", 16, "filters of the first encoder level", minimum=1)
    """

    name: str
    kind: OptionKind
    default: Any = REQUIRED
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    fields: tuple[Option, ...] = field(default=())

    @property
    def required(self) -> bool:
        return self.default is REQUIRED
