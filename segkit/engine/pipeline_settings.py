"""The input pipeline's settings for a project: its model size, classes, cache and ``[augment]``.

Training and ``segkit eval`` build their tf.data pipelines from the same record.
"""

from __future__ import annotations

from dataclasses import fields
from typing import cast

from segkit.data.pipeline import Augment, Cache, PipelineSettings
from segkit.project import Project
from segkit.run_folder import CACHE_DIR


def pipeline_settings(project: Project, training: bool) -> PipelineSettings:
    model, augment = project.model, project.augment
    return PipelineSettings(
        height=model.image_height, width=model.image_width, channels=model.image_channels,
        num_classes=project.classes.num_classes, batch_size=project.train.batch_size, seed=project.seed,
        with_weights=project.classes.ignore_color is not None or augment.crop, crop=augment.crop,
        crops_per_image=augment.crops_per_image, cache=cast(Cache, project.train.cache),  # validated against the same three choices
        cache_dir=project.output_dir / CACHE_DIR,
        # every transform of [augment] by its own name, so a new one needs no line here
        augment=Augment(**{f.name: getattr(augment, f.name) for f in fields(Augment)})
        if training and augment.enabled else None,
    )
