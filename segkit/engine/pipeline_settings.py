"""The input pipeline's settings for a project: its model size, classes, cache and ``[augment]``.

Training and ``segkit eval`` build their tf.data pipelines from the same record.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, cast

from segkit.data.pipeline import Augment, Cache, PipelineSettings
from segkit.project import Project
from segkit.run_folder import CACHE_DIR
from segkit.specs import PartialSource


def pipeline_settings(project: Project, training: bool, source: Any = None) -> PipelineSettings:
    """``source``, the dataset read through these settings, may label only part of its images
    (:class:`segkit.specs.PartialSource`): then ignored pixels get weight 0 as with an ignore colour."""
    model, augment = project.model, project.augment
    partial = isinstance(source, PartialSource) and source.partial_labels()
    return PipelineSettings(
        height=model.image_height, width=model.image_width, channels=model.image_channels,
        num_classes=project.classes.num_classes, batch_size=project.train.batch_size, seed=project.seed,
        with_weights=project.classes.ignore_color is not None or augment.crop or partial, crop=augment.crop,
        crops_per_image=augment.crops_per_image, cache=cast(Cache, project.train.cache),  # validated against the same three choices
        cache_dir=project.output_dir / CACHE_DIR,
        # every transform of [augment] by its own name, so a new one needs no line here
        augment=Augment(**{f.name: getattr(augment, f.name) for f in fields(Augment)})
        if training and augment.enabled else None,
    )
