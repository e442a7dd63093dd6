"""What can be known about a project's model before TensorFlow loads: its own rules and its size.

``segkit train`` calls :func:`check_model` before it touches the run folder, so a size the model
cannot take, or a model or batch that cannot fit in this machine's memory, ends in one line after
a second instead of deleting an earlier run, hanging, or ending in ``ResourceExhaustedError``.
"""

from __future__ import annotations

import os

from segkit.engine.components import model_request
from segkit.engine.runtime import build_with
from segkit.errors import ProjectError
from segkit.plugins import Registry
from segkit.project import Project
from segkit.specs import ModelFootprint, ModelSpec

#: float32 copies of every weight while training: the weight, its gradient, Adam's two moments
TRAINING_COPIES = 4
UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def check_model(project: Project, registry: Registry) -> None:
    """The model plugin's ``check`` and, when it gives a ``footprint``, the memory training needs."""
    spec = registry.get("model", project.model.name).spec
    if not isinstance(spec, ModelSpec):
        return
    source, request = str(project.source), model_request(project)
    if spec.check is not None:
        build_with(source, "model", spec.check, request)
    if spec.footprint is not None:
        check_memory(project, build_with(source, "model", spec.footprint, request), machine_memory())


def machine_memory() -> int:
    """Bytes of physical memory (what one process could have at most, swap aside)."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(project: Project, footprint: ModelFootprint, memory: int) -> None:
    """Refuse a run whose weights and one batch's layer outputs alone exceed ``memory`` bytes.

    Both figures are lower bounds (TensorFlow needs more), so every run refused here would have
    failed anyway; values are float32, or 2 bytes under a mixed precision policy.
    """
    model, batch = project.model, project.train.batch_size
    weights = footprint.parameters * 4 * TRAINING_COPIES
    activations = footprint.activations_per_image * batch * (2 if project.train.precision.startswith("mixed") else 4)
    if weights + activations <= memory:
        return
    if activations >= weights:
        keys = "model.image_width, model.image_height, train.batch_size"
        hint = "use smaller images or a smaller batch"
    else:
        keys = ", ".join(f"model.{key}" for key in footprint.parameter_keys) or "model"
        hint = "make the model smaller"
    raise ProjectError(
        str(project.source), keys,
        f"training needs at least {size(weights + activations)} ({size(activations)} for the layer outputs of "
        f"{batch} image(s) of {model.image_width}x{model.image_height}, {size(weights)} for "
        f"{footprint.parameters:,} weights with their gradients and optimizer state), more than this "
        f"machine's {size(memory)} of memory", hint)


def size(count: int) -> str:
    """``count`` bytes in binary units, e.g. ``15.5 GiB``."""
    value, unit = float(count), UNITS[0]
    for unit in UNITS:
        if value < 1024 or unit == UNITS[-1]:
            break
        value /= 1024
    return f"{value:.1f} {unit}" if unit != "B" else f"{count} B"
