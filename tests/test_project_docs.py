"""docs/project-file.md's key table is generated from the declarations and cannot drift from them."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from segkit.project import load_project
from segkit.project_docs import END, PAGE, START, key_table_markdown, with_table


def test_the_docs_hold_the_table_the_declarations_give() -> None:
    page = PAGE.read_text(encoding="utf-8")
    assert page.count(START) == page.count(END) == 1
    assert with_table(page, key_table_markdown()) == page, "run `python -m segkit.project_docs`"


def _keys(table: Mapping[str, Any], prefix: str) -> Iterator[str]:
    for name, value in table.items():
        key = f"{prefix}.{name}" if prefix else name
        if isinstance(value, Mapping):
            yield from _keys(value, key)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for row in value:
                yield from _keys(row, f"{key}[]")
        else:
            yield key


def test_every_key_of_a_resolved_project_is_in_the_table(tiny_project: Path) -> None:
    project = load_project(tiny_project, ["loss.name=dice_crossentropy"])
    listed = set(re.findall(r"^\| `([^`]+)` \|", key_table_markdown(), re.MULTILINE))
    resolved = set(_keys(project.resolved, ""))
    assert len(resolved) > 40 and resolved <= listed, sorted(resolved - listed)


def test_the_table_replaces_only_the_text_between_its_markers() -> None:
    page = f"# title\n\n{START}\n| old |\n{END}\n\ntext after\n"
    assert with_table(page, "| new |\n") == f"# title\n\n{START}\n| new |\n{END}\n\ntext after\n"
    with pytest.raises(ValueError, match="lacks the key table markers"):
        with_table("# no markers\n", "| new |\n")
