"""The README stays a short user's guide whose commands CI runs, and every documentation link resolves."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DEMO_COMMAND = ("python3 -m venv .venv && . .venv/bin/activate && pip install . && segkit train projects/demo.toml"
                " && segkit eval projects/demo.toml && segkit infer projects/demo.toml")
TEST_COMMAND = 'python3 -m venv .venv && . .venv/bin/activate && pip install ".[test]" && python -m pytest'
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose_lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks (a ``# comment`` in a block is no heading)."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of the file's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = [line.lstrip("#").strip() for line in _prose_lines(path) if line.startswith("#")]
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def _documents() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]


def test_readme_is_a_short_guide_holding_both_set_up_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) < 10_000
    blocks = re.findall(r"```bash\n(.*?)\n```", text, flags=re.DOTALL)
    assert blocks[:2] == [DEMO_COMMAND, TEST_COMMAND]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert 'python -m pip install --quiet ".[test]"' in ci
    assert ci[-1] == "python -m pytest -p no:cacheprovider"


def test_every_relative_link_and_anchor_in_the_docs_resolves() -> None:
    broken = []
    for document in _documents():
        for line in _prose_lines(document):
            for target in LINK.findall(line):
                if re.match(r"[a-z]+:", target):
                    continue
                file_part, _, anchor = target.partition("#")
                linked = (document.parent / file_part).resolve() if file_part else document
                if not linked.exists() or (anchor and anchor not in _anchors(linked)):
                    broken.append(f"{document.relative_to(ROOT)}: {target}")
    assert broken == []
