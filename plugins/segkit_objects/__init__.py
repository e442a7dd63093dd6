"""segkit's built-in instancers: from a model's softmax to nuclei, one label and one class each."""

from __future__ import annotations

from collections.abc import Iterable

from segkit.plugin import InstancerSpec, hookimpl
from segkit_objects.declarations import (
    COMPONENTS_OPTIONS,
    WATERSHED_OPTIONS,
    build_connected_components,
    build_watershed,
)


@hookimpl
def segkit_instancers() -> Iterable[InstancerSpec]:
    return [
        InstancerSpec(
            name="connected-components",
            description="connected components of each class's argmax: touching nuclei of one class stay one object",
            build=build_connected_components,
            options=COMPONENTS_OPTIONS,
        ),
        InstancerSpec(
            name="watershed",
            description="marker-controlled watershed on the foreground's distance map: splits touching nuclei",
            build=build_watershed,
            options=WATERSHED_OPTIONS,
        ),
    ]
