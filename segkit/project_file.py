"""Reading a project file: its bytes, checked for what is no project file, parsed as TOML."""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from segkit import toml_io
from segkit.errors import ProjectError

#: deepest nesting of tables and arrays a project file may hold (it needs 4)
MAX_NESTING = 32
#: largest project file read; one is a few kilobytes
MAX_PROJECT_BYTES = 1 << 20


def read_document(path: Path) -> dict[str, Any]:
    """Parse the TOML file; syntax errors name the line."""
    raw = _project_bytes(path)
    if raw.startswith(codecs.BOM_UTF8):  # Notepad's "UTF-8"; tomllib reports it as a bad statement
        raise ProjectError(str(path), "", "starts with a UTF-8 byte-order mark (BOM), which TOML does not allow",
                           "save it as UTF-8 without BOM")
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProjectError(str(path), "", f"is not UTF-8 text (byte {exc.start})", "save it as UTF-8") from None
    try:
        document = toml_io.loads(content)
    except toml_io.TOMLDecodeError as exc:
        raise ProjectError(str(path), "", f"invalid TOML: {exc}", "fix the syntax at that line") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise _too_deep(path, "deeper than Python's parser follows") from None
    depth = _depth(document)
    if depth > MAX_NESTING:  # [a.a.a...] headers parse without recursion but break what comes next
        raise _too_deep(path, f"more than {MAX_NESTING} levels deep")
    return document


def _project_bytes(path: Path) -> bytes:
    """The file's bytes; folders, devices, pipes and files far beyond any project file are refused
    unread (``/dev/zero`` would never end, a pipe would wait for ever)."""
    if not path.exists():
        raise ProjectError(str(path), "", "project file not found", "check the path")
    if path.is_dir():
        raise ProjectError(str(path), "", "is a folder, not a project file", "pass the .toml file inside it")
    if not path.is_file():
        raise ProjectError(str(path), "", "is a device, pipe or socket, not a project file",
                           "pass the path of a .toml file")
    size = path.stat().st_size
    if size > MAX_PROJECT_BYTES:
        raise ProjectError(str(path), "", f"is {size} bytes; a project file is a few kilobytes",
                           "pass the project's .toml file")
    return path.read_bytes()


def _depth(value: Any) -> int:
    """How deeply tables and arrays nest in ``value``, counted without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_NESTING:  # deeper than that is refused anyway: stop counting
            children = item.values() if isinstance(item, Mapping) else item if isinstance(item, list) else ()
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _too_deep(path: Path, how: str) -> ProjectError:
    return ProjectError(str(path), "", f"nests tables or arrays {how}",
                        f"a project file needs 4 levels; at most {MAX_NESTING} are read")
