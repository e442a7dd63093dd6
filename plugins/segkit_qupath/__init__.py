"""QuPath both ways: ``segkit prepare qupath-geojson`` turns a mask dataset into QuPath GeoJSON."""

from __future__ import annotations

from collections.abc import Iterable

from segkit.plugin import PreparerSpec, hookimpl


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
