"""segkit's built-in model plugin: FlexUNet, the reference project's configurable U-Net."""

from __future__ import annotations

from collections.abc import Iterable

from segkit.plugin import ModelSpec, hookimpl
from segkit_flexunet.flexunet_spec import FLEXUNET_OPTIONS, build_from_request, check_request, footprint


@hookimpl
def segkit_models() -> Iterable[ModelSpec]:
    return [
        ModelSpec(
            name="flexunet",
            description="U-Net with configurable depth, width, first-kernel size and dilation (reference FlexUNet)",
            build=build_from_request,
            options=FLEXUNET_OPTIONS,
            check=check_request,
            footprint=footprint,
        )
    ]
