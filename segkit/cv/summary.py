"""``segkit eval --folds``: each fold's best model on its held-out images, then ``cv_summary.csv`` and its plot.

Every fold is scored by :func:`segkit.engine.evaluate.run_evaluation` (its ``evaluation.csv`` lands
in its own folder). The summary has a row per fold, then ``mean`` and ``sd`` (the sample standard
deviation, n - 1) over the folds where a figure is defined, and ``pooled``: every held-out image
scored together, each predicted by the model that did not train on it, at its own size (as
``segkit infer`` predicts it; a model trained on resized images is scored on resized pairs in the
fold rows, so for such a project pooled and per-fold figures are measured differently).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segkit.cv.layout import FOLD_PLAN
from segkit.cv.plan import FoldPlan, read_plan
from segkit.cv.view import fold_project
from segkit.durable import replace_atomically
from segkit.engine.object_eval import figure_cell
from segkit.errors import RunStateError
from segkit.plugins import Registry
from segkit.project import Project
from segkit.run_folder import BEST_MODEL
from segkit.run_record import check_trained_with
from segkit.toml_io import write_atomic

SUMMARY = "cv_summary.csv"
SUMMARY_PLOT = "cv_summary.png"


@dataclass(frozen=True)
class CvSummary:
    """Every figure per fold, and of all held-out images pooled."""

    #: per fold, in order: figure name -> value
    folds: Sequence[Mapping[str, float]]
    pooled: Mapping[str, float]
    #: held-out images per fold
    images: Sequence[int]

    def rows(self) -> list[dict[str, Any]]:
        """The CSV's rows: one per fold, ``mean``, ``sd``, ``pooled``."""
        names = list(self.pooled)
        per_fold = [{"fold": str(k), "images": n, **fold} for k, (fold, n) in enumerate(zip(self.folds, self.images))]
        spread = {name: [fold.get(name, math.nan) for fold in self.folds] for name in names}
        mean = {name: _mean(values) for name, values in spread.items()}
        sd = {name: _sd(values) for name, values in spread.items()}
        total = sum(self.images)
        return [*per_fold, {"fold": "mean", "images": total, **mean}, {"fold": "sd", "images": total, **sd},
                {"fold": "pooled", "images": total, **self.pooled}]


def _defined(values: Sequence[float]) -> list[float]:
    return [v for v in values if not math.isnan(v)]


def _mean(values: Sequence[float]) -> float:
    defined = _defined(values)
    return float(np.mean(defined)) if defined else math.nan


def _sd(values: Sequence[float]) -> float:
    defined = _defined(values)
    return float(np.std(defined, ddof=1)) if len(defined) > 1 else math.nan


def trained_plan(project: Project) -> FoldPlan:
    """The plan of the cross-validation in the output folder, every fold of it trained; else one line."""
    plan = read_plan(project.output_dir)
    if plan is None:
        raise RunStateError(f"{project.output_dir / FOLD_PLAN}: no fold plan, so no cross-validation was trained "
                            "there; train one with: segkit train PROJECT --folds K")
    untrained = [k for k in range(plan.count) if not (fold_project(project, plan, k).output_dir / BEST_MODEL).is_file()]
    if untrained:
        raise RunStateError(f"{project.output_dir}: fold(s) {', '.join(map(str, untrained))} of {plan.count} have no "
                            "best model; train them first: segkit train PROJECT --resume")
    for fold in range(plan.count):
        check_trained_with(fold_project(project, plan, fold))
    return plan


def evaluate_folds(project: Project, registry: Registry, plan: FoldPlan) -> CvSummary:
    """Each fold scored on its held-out images, and all of them pooled; written to ``cv_summary.csv``/``.png``."""
    from segkit.engine import components
    from segkit.engine.evaluate import PixelScores, evaluation_of, run_evaluation
    from segkit.engine.object_eval import PerImageScores

    pixels = PixelScores(project, registry)
    objects = PerImageScores(project.classes, components.open_dataset(project, registry),
                             components.build_instancer(project, registry),
                             project.instances.name if project.instances else "")

    def pool(pair: Any, image: np.ndarray, mask: np.ndarray, softmax: np.ndarray) -> None:
        objects.add(pair, image, mask, softmax)
        pixels.add(mask, softmax)

    results = [run_evaluation(fold_project(project, plan, fold), registry, pool) for fold in range(plan.count)]
    images = [result.images for result in results]
    pooled = evaluation_of(project, pixels.figures(), objects, sum(images))
    summary = CvSummary([result.figures for result in results], pooled.figures, images)
    write_summary(project.output_dir / SUMMARY, summary.rows())
    plot_summary(project.output_dir / SUMMARY_PLOT, summary, list(pooled.pixels)[1:])
    return summary


def write_summary(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: figure_cell(v) if isinstance(v, float) else v for k, v in row.items()})
    write_atomic(path, buffer.getvalue())


def plot_summary(path: Path, summary: CvSummary, metrics: Sequence[str]) -> None:
    """Each pixel metric's per-fold values (dots), their mean ± sd (bar) and the pooled score (diamond)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(5.0, 0.9 * len(metrics) + 2), 4.2), dpi=100)
    axes = figure.subplots()
    rows = {row["fold"]: row for row in summary.rows()}
    for x, name in enumerate(metrics):
        values = [fold[name] for fold in summary.folds]
        axes.scatter([x] * len(values), values, color="C0", s=18, label="fold" if x == 0 else None, zorder=3)
        axes.errorbar(x + 0.2, rows["mean"][name], yerr=rows["sd"][name], fmt="o", color="C1", capsize=4,
                      label="mean ± sd" if x == 0 else None)
        axes.scatter(x - 0.2, summary.pooled[name], marker="D", color="C2", label="pooled" if x == 0 else None)
    axes.set_xticks(range(len(metrics)), metrics, rotation=30, ha="right")
    axes.set_title(f"{len(summary.folds)}-fold cross-validation, held-out images")
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    replace_atomically(path, lambda temporary: figure.savefig(temporary, format="png"))
