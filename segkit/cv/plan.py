"""The fold plan: which images each fold holds out, validates on and trains on (``folds.json``).

Grouped K-fold over the pool of every image (:mod:`segkit.cv.groups`): a group (core, patient)
is never split between folds, and with ``[cv] stratify`` the groups are dealt so that each fold
gets its share of every majority class, as scikit-learn's ``StratifiedGroupKFold`` does: largest
groups first (ties in a seeded random order), each into the fold where the classes' shares over
the folds spread least, an empty fold first while there is one.

Validation (early stopping, the best checkpoint, the learning-rate schedule) never sees the
held-out fold, so its score stays honest: the training groups of fold k are dealt once more, by
the same rule, into ``max(2, K - 1)`` parts, and the first part validates; fold k trains on the rest.

The plan is written before the first fold trains and read again on resume; a plan that no longer
matches the data (images added, removed or regrouped) is refused, so no trained fold is mixed
with folds of another plan.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segkit.cv.groups import SHOWN, image_groups, majority_classes, pooled_pairs
from segkit.cv.layout import FOLD_PLAN
from segkit.errors import DataError, RunStateError
from segkit.project import Project
from segkit.run_lock import run_folder_lock
from segkit.specs import DatasetSource
from segkit.toml_io import write_atomic

PLAN_FORMAT = 1


@dataclass(frozen=True)
class FoldPlan:
    """K folds of the pool: per fold the stems held out (``test``), validated on and trained on."""

    settings: Mapping[str, Any]
    #: stem -> group, for every image of the pool
    groups: Mapping[str, str]
    #: per fold, split name (``train``, ``valid``, ``test``) -> stems, sorted
    folds: tuple[Mapping[str, tuple[str, ...]], ...]

    @property
    def count(self) -> int:
        return len(self.folds)

    def to_json(self) -> str:
        return json.dumps({"segkit_folds": PLAN_FORMAT, "settings": dict(self.settings), "groups": dict(self.groups),
                           "folds": [{split: list(stems) for split, stems in fold.items()} for fold in self.folds]},
                          indent=2) + "\n"


def plan_settings(project: Project) -> dict[str, Any]:
    """What decides the plan besides the data; a plan made with other settings is another plan."""
    cv = project.cv
    return {"folds": cv.folds, "group_by": cv.group_by, "group_regex": cv.group_regex,
            "groups_csv": str(cv.groups_csv) if cv.groups_csv else None,
            "seed": project.seed if cv.seed is None else cv.seed, "stratify": cv.stratify}


def deal_groups(members: Mapping[str, Sequence[str]], strata: Mapping[str, int], parts: int, seed: int,
                most: int | None = None) -> list[list[str]]:
    """The groups of ``members`` (group -> stems) dealt into ``parts`` non-empty parts of at most ``most``
    groups each (see the module); the spread of the parts' sizes counts as much as the classes'."""
    rng = np.random.default_rng(seed)
    names = sorted(members)
    order = sorted((names[i] for i in rng.permutation(len(names))), key=lambda g: -len(members[g]))
    labels = sorted({strata[stem] for stems in members.values() for stem in stems})
    counts = np.zeros((parts, len(labels)))
    totals = sum((_histogram(stems, strata, labels) for stems in members.values()), np.zeros(len(labels)))
    dealt: list[list[str]] = [[] for _ in range(parts)]
    for group in order:
        adds = _histogram(members[group], strata, labels)

        def spread(part: int) -> tuple[float, int]:
            after = counts.copy()
            after[part] += adds
            sizes = after.sum(axis=1) / totals.sum()
            return float(np.std(after / totals, axis=0).mean() + np.std(sizes)), part

        empty = [p for p in range(parts) if not dealt[p]]
        open_parts = [p for p in range(parts) if most is None or len(dealt[p]) < most]
        best = min(empty or open_parts, key=spread)
        counts[best] += adds
        dealt[best].append(group)
    return dealt


def _histogram(stems: Sequence[str], strata: Mapping[str, int], labels: Sequence[int]) -> np.ndarray:
    return np.array([sum(strata[stem] == label for stem in stems) for label in labels], dtype=float)


def make_plan(settings: Mapping[str, Any], groups: Mapping[str, str], strata: Mapping[str, int]) -> FoldPlan:
    """The plan of ``settings["folds"]`` folds; a DataError when the groups cannot fill them."""
    k, seed = int(settings["folds"]), int(settings["seed"])
    members: dict[str, list[str]] = {}
    for stem in sorted(groups):
        members.setdefault(groups[stem], []).append(stem)
    if k > len(members):
        raise DataError(f"cv.folds: {k} folds, but the {len(groups)} images fall into {len(members)} group(s) "
                        f"(group_by = '{settings['group_by']}'), and a group is never split; use at most "
                        f"{len(members)} folds")
    if k == 2 and len(members) < 4:
        raise DataError(f"cv.folds: {k} folds of {len(members)} group(s) leave some fold a single group to train "
                        "and validate on, and each needs one of its own; give at least 4 groups for 2 folds")
    folds = []
    # at most n - 2 groups held out, so every fold keeps one group to train on and one to validate on
    for index, held_out in enumerate(deal_groups(members, strata, k, seed, most=len(members) - 2)):
        training = {g: members[g] for g in members if g not in held_out}
        inner = deal_groups(training, strata, min(max(2, k - 1), len(training)), seed + 1 + index)
        stems = {"test": held_out, "valid": inner[0], "train": [g for part in inner[1:] for g in part]}
        folds.append({split: tuple(sorted(s for g in chosen for s in members[g])) for split, chosen in stems.items()})
    return FoldPlan(dict(settings), dict(sorted(groups.items())), tuple(folds))


def read_plan(output_dir: Path) -> FoldPlan | None:
    """The plan in ``output_dir``, None when there is none; one line for a damaged one."""
    path = output_dir / FOLD_PLAN
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunStateError(f"{path}: the fold plan cannot be read ({exc}); restore it, or train again with "
                            "--overwrite") from None
    try:
        if raw.get("segkit_folds") != PLAN_FORMAT:
            raise ValueError(f"segkit_folds is {raw.get('segkit_folds')!r}, not {PLAN_FORMAT}")
        folds = tuple({split: tuple(str(s) for s in fold[split]) for split in ("train", "valid", "test")}
                      for fold in raw["folds"])
        return FoldPlan(dict(raw["settings"]), {str(k): str(v) for k, v in raw["groups"].items()}, folds)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise RunStateError(f"{path}: not a fold plan segkit wrote ({exc}); restore it, or train again with "
                            "--overwrite") from None


def plan_mismatch(plan: FoldPlan, settings: Mapping[str, Any], groups: Mapping[str, str]) -> str | None:
    """What differs between a written plan and the project and data as they are now, or None."""
    changed = [f"{key} = {plan.settings.get(key)!r} (project: {value!r})" for key, value in settings.items()
               if plan.settings.get(key) != value]
    if changed:
        return "was made with " + ", ".join(changed)
    for what, stems in (("added", sorted(set(groups) - set(plan.groups))),
                        ("removed", sorted(set(plan.groups) - set(groups))),
                        ("regrouped", sorted(s for s in groups if s in plan.groups and plan.groups[s] != groups[s]))):
        if stems:
            more = f" and {len(stems) - SHOWN} more" if len(stems) > SHOWN else ""
            return f"no longer matches the data: image(s) {what} since it was made: " + ", ".join(stems[:SHOWN]) + more
    return None


def current_groups(project: Project, source: DatasetSource) -> dict[str, str]:
    """Stem -> group of the project's data as it is now."""
    return image_groups(project, source, pooled_pairs(source))


def prepared_plan(project: Project, source: DatasetSource, *, replace: bool) -> FoldPlan:
    """The plan to train with: the written one when it matches the data, else a new one, written.

    A written plan that does not match is refused unless ``replace`` (``--overwrite`` of every fold).
    """
    settings = plan_settings(project)
    pool = pooled_pairs(source)
    groups = image_groups(project, source, pool)
    written = read_plan(project.output_dir)
    if written is not None:
        problem = plan_mismatch(written, settings, groups)
        if problem is None:
            return written
        if not replace:
            raise RunStateError(f"{project.output_dir / FOLD_PLAN}: the fold plan {problem}; the trained folds "
                                "were kept (put the data and [cv] back, or train every fold again with --overwrite)")
    strata = majority_classes(source, pool, project.classes.num_classes) if project.cv.stratify else {
        stem: 0 for stem in pool}
    plan = make_plan(settings, groups, strata)
    # under the folder's lock: folds started side by side (--fold N) share one temporary name
    with run_folder_lock(project.output_dir, "train", lambda text: None):
        write_atomic(project.output_dir / FOLD_PLAN, plan.to_json())
    return plan
