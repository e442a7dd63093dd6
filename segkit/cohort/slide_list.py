"""The slides of a cohort: every slide in a folder, or the files a list names (``--slides``).

A folder gives each file a slide reader claims (:func:`segkit.slides.listing.is_slide`) and each
TIFF, pyramidal or not: a damaged ``.tif`` is a slide that fails in its own row, not a cohort
refused. A list file (``.txt`` or ``.csv``) names one slide per line, relative to the list's folder
or absolute; blank lines and lines starting with ``#`` are skipped, and in a ``.csv`` the first
column is the path (a header ``slide`` or ``path`` is skipped). Slides are never opened here: the
workers do that, each slide's failure its own.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from segkit.data.names import quoted
from segkit.errors import DataError
from segkit.plugins import Registry
from segkit.slides.listing import TIFF_SUFFIXES, is_slide
from segkit.slides.outputs import slide_stem

#: the kinds of list file ``--slides`` takes
LIST_SUFFIXES = (".txt", ".csv")
#: first cells of a CSV list that are its header, not a slide
_HEADERS = ("slide", "path", "file")
#: how many missing slides a refusal names
_SHOWN = 3


def cohort_slides(source: Path, registry: Registry) -> list[Path]:
    """The slides of ``source`` (a folder or a list file), each once, no two of one stem."""
    if source.is_dir():
        slides = sorted((path for path in source.iterdir() if _is_candidate(path, registry)), key=lambda p: p.name)
        if not slides:
            raise DataError(f"{quoted(source)}: holds no slides (files a slide reader opens, or TIFFs); give the "
                            "folder of the cohort's slides or a list file of their paths")
    elif source.is_file() and source.suffix.lower() in LIST_SUFFIXES:
        slides = _listed(source)
    elif source.exists():
        raise DataError(f"--slides: {quoted(source)} is neither a folder nor a list file ({', '.join(LIST_SUFFIXES)}); "
                        "give the folder of the slides or a text file naming one slide per line")
    else:
        raise DataError(f"--slides: {quoted(source)} does not exist; give the folder of the slides or a list file")
    _refuse_shared_stems(slides)
    return slides


def _is_candidate(path: Path, registry: Registry) -> bool:
    if path.name.startswith(".") or not path.is_file():
        return False
    return path.suffix.lower() in TIFF_SUFFIXES or is_slide(path, registry)


def _listed(source: Path) -> list[Path]:
    """The slides ``source`` names, in its order; a missing one (or none at all) is refused."""
    named: list[tuple[int, Path]] = []
    seen: set[Path] = set()
    for line, path in _named_lines(source):  # a slide named twice is one slide
        if path.absolute() not in seen:
            seen.add(path.absolute())
            named.append((line, path))
    if not named:
        raise DataError(f"{quoted(source)}: names no slides; write one slide path per line")
    missing = [(line, path) for line, path in named if not path.is_file()]
    if missing:
        shown = ", ".join(f"line {line}: {quoted(path)}" for line, path in missing[:_SHOWN])
        more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        raise DataError(f"{quoted(source)}: {len(missing)} of {len(named)} slide(s) it names do not exist ({shown}"
                        f"{more}); fix the paths (relative ones are read from the list's folder) or remove the lines")
    return [path for _, path in named]


def _named_lines(source: Path) -> Iterator[tuple[int, Path]]:
    """(line number, path) of each slide the list names, a path relative to the list's folder."""
    with source.open(newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle) if source.suffix.lower() == ".csv" else ([line.rstrip("\r\n")] for line in handle)
        for number, row in enumerate(rows, start=1):
            cell = row[0].strip() if row else ""
            if not cell or cell.startswith("#") or (number == 1 and cell.lower() in _HEADERS):
                continue
            path = Path(cell).expanduser()
            yield number, path if path.is_absolute() else source.parent / path


def _refuse_shared_stems(slides: list[Path]) -> None:
    """Two slides of one stem would write the same outputs into the one output folder."""
    seen: dict[str, Path] = {}
    for slide in slides:
        other = seen.setdefault(slide_stem(slide), slide)
        if other != slide:
            raise DataError(f"{quoted(other)} and {quoted(slide)}: two slides of one stem, {quoted(slide_stem(slide))},"
                            " would write the same outputs; rename one or run them as two cohorts into separate "
                            "output folders")
