"""Declarative schemas for TOML keys, shared by the core sections and every plugin.

A plugin lists its own keys as :class:`Option` records in its spec; the project loader validates
them exactly like the core's own keys, so an unknown or mistyped plugin key is reported with its
full key path before TensorFlow is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

OptionKind = Literal[
    "int", "float", "bool", "str", "int_or_pair", "color", "str_list", "path", "dir", "table"
]

R = TypeVar("R", bound="DataclassInstance")

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


#: metadata keys of a field declared with :func:`setting`
_OPTION = "segkit.option"
_RECORD = "segkit.record"


def setting(kind: OptionKind, default: Any = REQUIRED, help: str = "", *, minimum: float | None = None,
            maximum: float | None = None, choices: tuple[str, ...] = (), record: type[Any] | None = None) -> Any:
    """A field of a section record declared as the TOML key of the same name, like pytest's ``addini``.

    The field gets no default of its own: records are built only by :func:`build_record` from a
    table that :func:`~segkit.validation.validate_table` filled in, so the option's default is the
    one default there is, and it is checked like a written value. ``record`` makes a ``table`` key
    whose fields are that record's settings.
    """
    fields_of = options_of(record) if record is not None else ()
    option = Option("", kind, default, help, minimum, maximum, choices, fields_of)
    return field(metadata={_OPTION: option, _RECORD: record})


def options_of(record: type[Any]) -> tuple[Option, ...]:
    """The TOML keys a record declares with :func:`setting`, in field order (the resolved file's order)."""
    return tuple(replace(f.metadata[_OPTION], name=f.name) for f in fields(record) if _OPTION in f.metadata)


def build_record(record: type[R], table: Mapping[str, Any], **others: Any) -> R:
    """``record`` from a validated table, every setting by keyword; ``others`` are its fields that are
    not keys (a plugin's own options). A sub-table becomes the record its setting names."""
    values: dict[str, Any] = {}
    for f in fields(record):
        if _OPTION in f.metadata:
            nested, value = f.metadata[_RECORD], table[f.name]
            values[f.name] = build_record(nested, value) if nested is not None and value is not None else value
    return record(**values, **others)
