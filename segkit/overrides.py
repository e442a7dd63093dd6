"""``--set key.path=VALUE``: change one value of a parsed project without editing the file."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from segkit import toml_io
from segkit.errors import ProjectError


def parse_value(text: str) -> Any:
    """A TOML value (``3``, ``1e-4``, ``[64, 64]``, ``"x"``, ``true``); anything else is a plain string."""
    try:
        return toml_io.loads(f"value = {text}")["value"]
    except (toml_io.TOMLDecodeError, RecursionError):  # [[[[...]]]] nested past the parser's depth
        return text


def _step(container: Any, part: str, source: str, key: str) -> Any:
    if isinstance(container, list):
        if not part.isdigit() or int(part) >= len(container):
            raise ProjectError(source, key, f"'{part}' is not an index of this array (0..{len(container) - 1})",
                               "use --set section.N.key=VALUE with an existing N")
        return container[int(part)]
    if not isinstance(container, dict):
        raise ProjectError(source, key, "goes through a value that is not a table", "check the key path")
    return container.setdefault(part, {})


def apply_overrides(
    document: dict[str, Any], overrides: Sequence[str], source: str
) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``document`` with each ``key.path=VALUE`` applied, and the key paths that were set."""
    result = copy.deepcopy(document)
    keys: list[str] = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ProjectError(source, f"--set {item}", "expected KEY.PATH=VALUE", "e.g. --set train.epochs=2")
        parts = key.split(".")
        container: Any = result
        for part in parts[:-1]:
            container = _step(container, part, source, key)
        if isinstance(container, list):
            raise ProjectError(source, key, "cannot replace a whole table of an array", "set one of its keys")
        if not isinstance(container, dict):
            raise ProjectError(source, key, "goes through a value that is not a table", "check the key path")
        container[parts[-1]] = parse_value(raw.strip())
        keys.append(key)
    return result, keys
