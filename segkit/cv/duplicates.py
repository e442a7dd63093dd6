"""``segkit stats`` on a cross-validated project: near-duplicates that the fold plan puts into different folds.

A copy of one original (a flipped or warped tile) trained on in one fold and scored in another
inflates that fold's score exactly as a train/test leak does; the fix is to group them together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from segkit.cv.groups import image_groups, pooled_pairs
from segkit.cv.plan import FoldPlan, new_plan, read_plan
from segkit.errors import SegkitError
from segkit.plugins import Registry
from segkit.project import Project
from segkit.stats.near_duplicates import DuplicateCluster


def project_plan(project: Project, registry: Registry) -> FoldPlan | None:
    """The plan in the output folder, else the one ``[cv]`` would make now; None without cross-validation."""
    from segkit.engine.components import open_dataset

    written = read_plan(project.output_dir)
    if written is not None or project.cv.folds is None:
        return written
    source = open_dataset(project, registry)
    pool = pooled_pairs(source)
    return new_plan(project, source, pool, image_groups(project, source, pool))


def folds_of(plan: FoldPlan) -> dict[str, int]:
    """Stem -> the fold that holds it out."""
    return {stem: index for index, fold in enumerate(plan.folds) for stem in fold["test"]}


def split_duplicates(clusters: Sequence[DuplicateCluster], fold_of: Mapping[str, int]) -> list[str]:
    """One note per cluster of near-duplicates held out by more than one fold."""
    notes = []
    for cluster in clusters:
        members = sorted({(fold_of[stem], stem) for _, name in cluster.members if (stem := Path(name).stem) in fold_of})
        if len({fold for fold, _ in members}) > 1:
            listed = ", ".join(f"{stem} (fold {fold})" for fold, stem in members)
            notes.append(f"near-duplicates in different folds of the cross-validation: {listed}; a fold then scores "
                         "copies of what it trained on (give them one group: [cv] group_by)")
    return notes


def fold_duplicate_notes(project: Project, registry: Registry, clusters: Sequence[DuplicateCluster]) -> list[str]:
    """The notes of :func:`split_duplicates` for the project's plan; a plan that cannot be made is one note."""
    try:
        plan = project_plan(project, registry)
    except SegkitError as exc:
        return [f"no fold plan to check near-duplicates against: {exc}"]
    return [] if plan is None else split_duplicates(clusters, folds_of(plan))
