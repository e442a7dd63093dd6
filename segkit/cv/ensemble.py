"""The fold ensemble: the models of a cross-validation's folds as ONE Keras model.

One input, each fold's best model applied to it, their softmaxes averaged (``keras.layers.Average``,
equal weights, as nnU-Net does). Because it is one ordinary functional model of stock layers,
``segkit infer``, ``eval`` and ``export`` take it where they take a run's best model, a saved
ensemble loads with ``keras.saving.load_model``, and an export holds every fold in one graph.

Which folds, and whether each has a model trained with the project's model-defining keys, is
checked without TensorFlow (:func:`ensemble_folds`), before any output folder is touched.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from segkit.cv.layout import FOLD_PLAN, fold_folder
from segkit.cv.plan import FoldPlan, read_plan
from segkit.cv.view import fold_project
from segkit.engine.best_model import load_best_model, model_file_digest
from segkit.errors import RunStateError, SegkitError
from segkit.plugins import Registry
from segkit.project import Project
from segkit.run_folder import BEST_MODEL
from segkit.run_record import check_trained_with

ENSEMBLE_NAME = "fold_ensemble"
#: where ``segkit eval --ensemble`` writes evaluation.csv and evaluation_per_image.csv, in the CV's folder
ENSEMBLE_DIR = "ensemble"
#: how many of the test images seen in training a refusal names
_SHOWN = 3


class FoldChoiceError(SegkitError):
    """``--fold-subset`` is no list of fold numbers, or the options choosing folds contradict each other."""


def parse_fold_subset(text: str) -> list[int]:
    """``"0,2,4"`` -> ``[0, 2, 4]``; anything else (empty, negative, repeated, not a number) is one line."""
    parts = [part.strip() for part in text.split(",")]
    if not all(re.fullmatch(r"\d+", part) for part in parts):
        raise FoldChoiceError(f"--fold-subset: {text!r} is not a comma-separated list of fold numbers "
                              "(write e.g. --fold-subset 0,2,4)")
    folds = [int(part) for part in parts]
    if len(set(folds)) != len(folds):
        raise FoldChoiceError(f"--fold-subset: {text!r} names a fold twice (name each fold once)")
    return folds


def chosen_folds(project: Project, folds: bool, subset: str | None, flag: str = "--folds") -> list[int] | None:
    """The folds ``flag`` (``--folds``; eval's ``--ensemble``) and ``--fold-subset`` ask for, checked
    (:func:`ensemble_folds`); None for the run's own best model. A subset without ``flag`` is refused
    rather than silently ignored."""
    if subset is not None and not folds:
        raise FoldChoiceError(f"--fold-subset: chooses folds of the ensemble; add {flag}")
    return ensemble_folds(project, parse_fold_subset(subset) if subset is not None else None) if folds else None


def load_run_model(project: Project, folds: Sequence[int] | None = None, registry: Registry | None = None) -> Any:
    """The run's best model, or with ``folds`` the ensemble of those folds' models."""
    return load_best_model(project, registry) if folds is None else load_ensemble(project, folds, registry)


def _trained_plan(project: Project) -> FoldPlan:
    plan = read_plan(project.output_dir)
    if plan is None:
        raise RunStateError(f"{project.output_dir / FOLD_PLAN}: no fold plan, so no cross-validation was trained "
                            f"there; train one with `segkit train {project.source} --folds K` first")
    return plan


def ensemble_folds(project: Project, subset: Sequence[int] | None = None) -> list[int]:
    """The folds whose models make the ensemble: ``subset``, or every fold of the plan (``folds.json``).

    Each must have a best model trained with the project's model-defining keys. Refused in one line:
    no fold plan, a fold without its model, a subset naming a fold the plan does not have. Reads no
    model (no TensorFlow), so the CLI asks before anything is written.
    """
    plan = _trained_plan(project)
    chosen = sorted(subset) if subset is not None else list(range(plan.count))
    for fold in chosen:
        folded = fold_project(project, plan, fold) if fold < plan.count else None
        if folded is None:
            raise RunStateError(f"{fold_folder(project.output_dir, fold)}: no such fold (--fold-subset names fold "
                                f"{fold}; the cross-validation has folds 0 to {plan.count - 1})")
        if not (folded.output_dir / BEST_MODEL).is_file():
            raise RunStateError(f"{folded.output_dir / BEST_MODEL}: fold {fold} has no trained model yet; train it "
                                f"(segkit train {project.source} --fold {fold}) or leave it out with --fold-subset")
        check_trained_with(folded)
    return chosen


def check_unseen_test(project: Project, registry: Registry) -> None:
    """Refuse to score the ensemble on test images in the cross-validation's pool: every fold but one
    trained on each of them, so the score would flatter the ensemble. Read without TensorFlow."""
    from segkit.engine.components import open_dataset

    pool = _trained_plan(project).groups
    seen = sorted(pair.stem for pair in open_dataset(project, registry).pairs("test") if pair.stem in pool)
    if seen:
        named = ", ".join(f"'{stem}'" for stem in seen[:_SHOWN]) + (f" and {len(seen) - _SHOWN} more"
                                                                     if len(seen) > _SHOWN else "")
        raise RunStateError(f"dataset.test: {named} are in the cross-validation's pool, so the folds trained on "
                            "them; score the ensemble on images no fold saw (--set dataset.test.images=... "
                            "--set dataset.test.masks=...)")


def ensemble_digest(project: Project, folds: Sequence[int]) -> str:
    """SHA-256 over the folds' best-model digests, in fold order: what names the ensemble in a slide's
    record (another subset, or one fold retrained, is another model). Read without TensorFlow."""
    plan = _trained_plan(project)
    parts = [f"fold_{fold}:{model_file_digest(fold_project(project, plan, fold))}" for fold in sorted(folds)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def load_ensemble(project: Project, folds: Sequence[int], registry: Registry | None = None) -> Any:
    """The folds' best models (each loaded as :func:`load_best_model` loads a run's, shapes checked
    against the project) as one model averaging their softmaxes."""
    plan = _trained_plan(project)
    return ensemble_of([load_best_model(fold_project(project, plan, fold), registry) for fold in folds],
                       [f"fold_{fold}" for fold in folds])


def ensemble_of(models: Sequence[Any], names: Sequence[str]) -> Any:
    """One functional model: ``models`` (same input and output shapes) each applied to one input,
    their outputs averaged. Each model is renamed ``names[i]``: two folds' models carry one name."""
    import keras

    if not models or len(models) != len(names):
        raise ValueError(f"an ensemble needs one name per model, got {len(models)} models and {len(names)} names")
    image = keras.Input(models[0].input_shape[1:], name="image")
    outputs = []
    for model, name in zip(models, names):
        model.name = name
        outputs.append(model(image, training=False))
    # float32 whatever the folds computed in: a float16 mean of softmaxes would round each to 1/1024
    averaged = keras.layers.Average(name="fold_mean", dtype="float32")(outputs)
    return keras.Model(image, averaged, name=ENSEMBLE_NAME)
