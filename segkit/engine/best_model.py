"""The run's best model, loaded once from its checkpoint and checked against the project.

``segkit eval``, ``infer`` and ``export`` all start from it.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

from segkit.engine import components
from segkit.errors import RunStateError
from segkit.plugins import Registry, get_registry
from segkit.project import Project
from segkit.run_folder import BEST_MODEL
from segkit.run_record import check_trained_with


def load_best_model(project: Project, registry: Registry | None = None) -> Any:
    """The checkpoint of the run, loaded once, without compiling (and never in unsafe mode).

    The file carries its architecture, so nothing is built first: a second copy of the weights
    (475 MiB for a 512-px FlexUNet) would only be thrown away. A model whose custom Keras classes
    (``register_keras_serializable``) live in a module its plugin imports only when building is
    built once, to register them, and the file loaded again.
    """
    path = _trained_model_path(project)
    if not zipfile.is_zipfile(path):  # Keras would say "File not found" about a half-copied file
        raise RunStateError(f"{path}: is not a complete .keras file (damaged or half-copied); copy it again "
                            "or train again with --overwrite")
    try:
        model = _load_keras(path)
    except Exception:  # noqa: BLE001 - perhaps a class its plugin registers while building: retried below
        components.build_model(project, registry or get_registry())
        try:
            model = _load_keras(path)
        except Exception as exc:  # noqa: BLE001 - a foreign or damaged file is the user's to replace
            detail = " ".join(str(exc).split())[:200]
            raise RunStateError(f"{path}: cannot be loaded ({exc.__class__.__name__}: {detail}); "
                                "train again with --overwrite") from None
    _check_shape(model, project, path)
    check_trained_with(project)  # the CLI asked before TensorFlow; callers of the API are asked here
    return model


def _trained_model_path(project: Project) -> Path:
    path = project.output_dir / BEST_MODEL
    if not path.exists():
        raise RunStateError(f"{path}: no trained model yet; run `segkit train {project.source}` first")
    return path


def _load_keras(path: Path) -> Any:
    import keras

    return keras.saving.load_model(path, compile=False, safe_mode=True)


def _check_shape(model: Any, project: Project, path: Path) -> None:
    expected_in = (project.model.image_height, project.model.image_width, project.model.image_channels)
    got_in, got_out = tuple(model.input_shape[1:]), model.output_shape[-1]
    if got_out != project.classes.num_classes or got_in != expected_in:
        raise RunStateError(
            f"{path}: model takes {got_in} and predicts {got_out} classes, but the project says {expected_in} "
            f"and {project.classes.num_classes} classes; train again (--overwrite) or fix the project"
        )


def model_file_digest(project: Project) -> str:
    """SHA-256 of the run's best-model file: what a slide's record names, so that a slide made by
    another model (retrained, or another run) is never taken for done. Read without TensorFlow."""
    path = _trained_model_path(project)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()
