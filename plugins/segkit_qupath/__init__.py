"""segkit's QuPath plugin: objects exported from QuPath as GeoJSON as a training dataset."""

from __future__ import annotations

from collections.abc import Iterable

from segkit.plugin import DatasetSpec, hookimpl
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
