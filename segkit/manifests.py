"""The JSON lists segkit keeps of what it wrote: a run's entries, infer's masks, a preparation's files.

Each is what lets a later command replace segkit's own files and refuse anyone else's; each owner
decides what an unreadable list means (nothing is ours, the run's default layout, or an error).
"""

from __future__ import annotations

import json
from pathlib import Path


def listed_names(path: Path, key: str) -> list[str] | None:
    """The strings listed under ``key`` in the JSON file at ``path``; None when absent or unreadable."""
    try:
        listed = json.loads(path.read_text(encoding="utf-8"))[key]
    except (OSError, ValueError, KeyError, TypeError):  # UnicodeDecodeError is a ValueError
        return None
    return [name for name in listed if isinstance(name, str)] if isinstance(listed, list) else None


def files_under(path: Path) -> list[Path]:
    """What a list of written files must account for at ``path``: ``path`` itself when it is not a
    folder (a file, a link, a pipe), nothing when it is absent, else every non-folder below it,
    sorted; links are listed, never followed."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob("*") if p.is_symlink() or not p.is_dir())
