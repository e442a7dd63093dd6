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
from dataclasses import replace
from typing import Any

from segkit.cv.layout import fold_folder, trained_folds
from segkit.engine.best_model import load_best_model, model_file_digest
from segkit.errors import RunStateError, SegkitError
from segkit.plugins import Registry
from segkit.project import Project
from segkit.run_folder import BEST_MODEL
from segkit.run_record import check_trained_with

#: the fold folders of a cross-validation, trained or not (``fold_folder`` names them)
_FOLD_FOLDER = re.compile(r"fold_(\d+)")
ENSEMBLE_NAME = "fold_ensemble"


class FoldSubsetError(SegkitError):
    """``--fold-subset`` is no list of fold numbers."""


def parse_fold_subset(text: str) -> list[int]:
    """``"0,2,4"`` -> ``[0, 2, 4]``; anything else (empty, negative, repeated, not a number) is one line."""
    parts = [part.strip() for part in text.split(",")]
    if not all(re.fullmatch(r"\d+", part) for part in parts):
        raise FoldSubsetError(f"--fold-subset: {text!r} is not a comma-separated list of fold numbers "
                              "(write e.g. --fold-subset 0,2,4)")
    folds = [int(part) for part in parts]
    if len(set(folds)) != len(folds):
        raise FoldSubsetError(f"--fold-subset: {text!r} names a fold twice (name each fold once)")
    return folds


def chosen_folds(project: Project, folds: bool, subset: str | None) -> list[int] | None:
    """The folds ``--folds`` / ``--fold-subset`` ask for, checked (:func:`ensemble_folds`); None for the run's
    own best model. A subset without ``--folds`` is refused rather than silently ignored."""
    if subset is not None and not folds:
        raise FoldSubsetError("--fold-subset: chooses folds of the ensemble; add --folds")
    return ensemble_folds(project, parse_fold_subset(subset) if subset is not None else None) if folds else None


def load_model(project: Project, folds: Sequence[int] | None = None, registry: Registry | None = None) -> Any:
    """The run's best model, or with ``folds`` the ensemble of those folds' models."""
    return load_best_model(project, registry) if folds is None else load_ensemble(project, folds, registry)


def fold_project(project: Project, fold: int) -> Project:
    """``project`` with fold ``fold``'s run folder as its output folder: how each fold trained."""
    return replace(project, output_dir=fold_folder(project.output_dir, fold))


def _fold_folders(project: Project) -> list[int]:
    root = project.output_dir
    if not root.is_dir():
        return []
    return sorted(int(match.group(1)) for entry in root.iterdir()
                  if entry.is_dir() and (match := _FOLD_FOLDER.fullmatch(entry.name)))


def ensemble_folds(project: Project, subset: Sequence[int] | None = None) -> list[int]:
    """The folds whose models make the ensemble: ``subset``, or every fold of the cross-validation.

    Each must have a best model trained with the project's model-defining keys. Refused in one line:
    no fold at all, a fold folder without its model, a subset naming a fold that does not exist.
    Reads no model (no TensorFlow), so the CLI asks before anything is written.
    """
    root, present, trained = project.output_dir, _fold_folders(project), trained_folds(project.output_dir)
    if not present:
        raise RunStateError(f"{root}: holds no folds (fold_0, fold_1, ...); train them with "
                            f"`segkit train {project.source} --folds K` first")
    chosen = sorted(subset) if subset is not None else present
    for fold in chosen:
        if fold not in present:
            raise RunStateError(f"{fold_folder(root, fold)}: no such fold (--fold-subset names fold {fold}; the "
                                f"folds here are {', '.join(map(str, present))})")
        if fold not in trained:
            raise RunStateError(f"{fold_folder(root, fold) / BEST_MODEL}: fold {fold} has no trained model yet; "
                                f"train it (segkit train {project.source} --fold {fold}) or leave it out "
                                "with --fold-subset")
        check_trained_with(fold_project(project, fold))
    return chosen


def ensemble_digest(project: Project, folds: Sequence[int]) -> str:
    """SHA-256 over the folds' best-model digests, in fold order: what names the ensemble in a slide's
    record (another subset, or one fold retrained, is another model). Read without TensorFlow."""
    parts = [f"fold_{fold}:{model_file_digest(fold_project(project, fold))}" for fold in sorted(folds)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def load_ensemble(project: Project, folds: Sequence[int], registry: Registry | None = None) -> Any:
    """The folds' best models (each loaded as :func:`load_best_model` loads a run's, shapes checked
    against the project) as one model averaging their softmaxes."""
    return ensemble_of([load_best_model(fold_project(project, fold), registry) for fold in folds],
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
