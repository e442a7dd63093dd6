"""segkit's built-in dataset plugin: folders of images with RGB categorized masks."""

from __future__ import annotations

from collections.abc import Iterable

from segkit.plugin import DatasetSpec, hookimpl
from segkit_masks.categorized_masks import SPLIT_OPTIONS, open_categorized_masks


@hookimpl
def segkit_datasets() -> Iterable[DatasetSpec]:
    return [
        DatasetSpec(
            name="categorized-masks",
            description="images/ and masks/ folders per split; RGB masks coloured by the class table",
            build=open_categorized_masks,
            options=SPLIT_OPTIONS,
        )
    ]
