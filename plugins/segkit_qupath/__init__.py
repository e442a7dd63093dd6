"""segkit's QuPath plugin: objects exported from QuPath as GeoJSON as a training dataset, and
``segkit prepare qupath-geojson``, which turns a mask dataset into such GeoJSON."""

from __future__ import annotations

from collections.abc import Iterable

from segkit.plugin import DatasetSpec, PreparerSpec, hookimpl
from segkit_qupath.qupath_dataset import OPTIONS, open_qupath_geojson


@hookimpl
def segkit_datasets() -> Iterable[DatasetSpec]:
    return [
        DatasetSpec(
            name="qupath-geojson",
            description="images/ and geojson/ folders per split: QuPath's Export objects as GeoJSON, one file per image",
            build=open_qupath_geojson,
            options=OPTIONS,
        )
    ]


@hookimpl
def segkit_preparers() -> Iterable[PreparerSpec]:
    from segkit_qupath.to_qupath import QUPATH_OPTIONS, prepare_qupath

    return [
        PreparerSpec(
            name="qupath-geojson",
            description="categorized-mask split folders (<split>/images, masks[, instances]) -> QuPath "
                        "GeoJSON annotations per image (<split>/images, geojson)",
            build=prepare_qupath,
            options=QUPATH_OPTIONS,
        )
    ]
