"""Which images belong together (a patient, a tissue core), and each image's class for stratifying.

The pool of a cross-validation is every image of every split the dataset has (train, valid and
test together, as nnU-Net pools them): the folds replace the fixed splits. Images are named by
stem throughout, so two splits holding the same stem cannot be pooled.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from segkit.classes import IGNORE_INDEX
from segkit.errors import DataError, ProjectError
from segkit.project import Project
from segkit.specs import DatasetSource, FolderSource, GroupedSource

if TYPE_CHECKING:
    from segkit.data.pairing import Pair

SPLITS = ("train", "valid", "test")
#: how many offending stems a message names
SHOWN = 3


def _named(stems: Sequence[str]) -> str:
    more = f" and {len(stems) - SHOWN} more" if len(stems) > SHOWN else ""
    return ", ".join(f"'{stem}'" for stem in stems[:SHOWN]) + more


def source_splits(source: DatasetSource) -> list[str]:
    """The splits a source has: a folder source's own, every split of any other."""
    return [s for s in SPLITS if s in source.folders()] if isinstance(source, FolderSource) else list(SPLITS)


def pooled_pairs(source: DatasetSource) -> dict[str, Pair]:
    """Every pair of every split the source has, by stem; a DataError when two splits share a stem."""
    splits = source_splits(source)
    pool: dict[str, Pair] = {}
    where: dict[str, str] = {}
    for split in splits:
        for pair in source.pairs(split):
            if pair.stem in pool:
                raise DataError(f"dataset: the image stem '{pair.stem}' is in both the {where[pair.stem]} and the "
                                f"{split} split; cross-validation pools every split, so each image needs a stem "
                                "of its own (rename one of the two)")
            pool[pair.stem], where[pair.stem] = pair, split
    if not pool:
        raise DataError("dataset: no image/mask pairs in any split, so there is nothing to cross-validate")
    return pool


def image_groups(project: Project, source: DatasetSource, pool: Mapping[str, Pair]) -> dict[str, str]:
    """Stem -> group as ``[cv] group_by`` says; one line naming stems that get no group."""
    cv, where = project.cv, str(project.source)
    if cv.group_by == "image":
        return {stem: stem for stem in pool}
    if cv.group_by == "dataset":
        if not isinstance(source, GroupedSource):
            raise ProjectError(where, "cv.group_by", f"'dataset': the dataset '{project.dataset.name}' names no "
                               "groups", "use group_by = 'regex' or 'csv'")
        return {stem: source.group(pair) for stem, pair in pool.items()}
    if cv.group_by == "regex":
        assert cv.group_regex is not None  # the loader requires it with 'regex'
        return _regex_groups(where, cv.group_regex, pool)
    assert cv.groups_csv is not None
    return _csv_groups(cv.groups_csv, pool)


def _regex_groups(where: str, pattern: str, pool: Mapping[str, Pair]) -> dict[str, str]:
    compiled = re.compile(pattern)
    groups: dict[str, str] = {}
    for stem in pool:
        match = compiled.search(stem)
        # the first group where the pattern has one, else the whole match; an empty one is no group
        found = (match.group(1) if compiled.groups else match.group(0)) if match else None
        if found:
            groups[stem] = found
    unmatched = sorted(set(pool) - set(groups))
    if len(unmatched) == len(pool):
        raise ProjectError(where, "cv.group_regex", f"{pattern!r} matches none of the {len(pool)} image stems "
                           f"(e.g. {_named(sorted(pool))})", "write a pattern that finds the group in the stem")
    if unmatched:
        raise ProjectError(where, "cv.group_regex", f"{pattern!r} leaves {len(unmatched)} image stem(s) without a "
                           f"group: {_named(unmatched)}", "write a pattern that finds a group in every stem")
    return groups


def _csv_groups(path: Path, pool: Mapping[str, Pair]) -> dict[str, str]:
    """``stem,group`` rows (a header row ``stem,group`` is allowed); rows of other stems are ignored."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cv.groups_csv: {path}: cannot be read ({exc}); give a CSV of stem,group rows") from None
    if rows and [cell.strip().lower() for cell in rows[0][:2]] == ["stem", "group"]:
        rows = rows[1:]
    table: dict[str, str] = {}
    for number, row in enumerate(rows, 1):
        if len(row) < 2 or not row[1].strip():
            raise DataError(f"cv.groups_csv: {path}: row {number} {row!r} is no stem,group pair; "
                            "write one stem,group row per image")
        table[row[0].strip()] = row[1].strip()
    missing = sorted(set(pool) - set(table))
    if missing:
        raise DataError(f"cv.groups_csv: {path}: no group for {len(missing)} image stem(s): {_named(missing)}; "
                        "add a stem,group row for every image")
    return {stem: table[stem] for stem in pool}


def majority_classes(source: DatasetSource, pool: Mapping[str, Pair], num_classes: int) -> dict[str, int]:
    """Stem -> the class with most labelled pixels other than the background (0 when only background):
    the background outweighs every class in nearly every histology mask, so it would stratify nothing."""
    found: dict[str, int] = {}
    for stem, pair in pool.items():
        mask = np.asarray(source.load(pair)[1])
        counts = np.bincount(mask[mask != IGNORE_INDEX].ravel(), minlength=num_classes)[:num_classes]
        found[stem] = int(np.argmax(counts[1:]) + 1) if counts[1:].any() else 0
    return found
