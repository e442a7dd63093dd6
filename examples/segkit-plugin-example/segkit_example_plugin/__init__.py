"""segkit-plugin-example: a residual attention U-Net, a focal Tversky + cross-entropy loss and a learning-rate logger.

Only hook implementations live here. They describe builders; the Keras code sits in sibling
modules that the builders import when segkit calls them, so ``segkit plugins`` and project
validation never import TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable

from segkit.plugin import CallbackSpec, LossSpec, ModelSpec, hookimpl
from segkit_example_plugin.declarations import (
    FOCAL_TVERSKY_OPTIONS, LR_LOGGER_OPTIONS, RES_UNET_OPTIONS, build_focal_tversky, build_lr_logger,
    build_res_attention_unet,
)


@hookimpl
def segkit_models() -> Iterable[ModelSpec]:
    return [ModelSpec("res-attention-unet", "U-Net of residual blocks whose skip connections pass attention gates",
                      build_res_attention_unet, options=RES_UNET_OPTIONS)]


@hookimpl
def segkit_losses() -> Iterable[LossSpec]:
    return [LossSpec("focal-tversky", "cross-entropy plus focal Tversky: misses cost more than false alarms",
                     build_focal_tversky, options=FOCAL_TVERSKY_OPTIONS)]


@hookimpl
def segkit_callbacks() -> Iterable[CallbackSpec]:
    return [CallbackSpec("lr-logger", "writes each epoch's learning rate to <output_dir>/lr_log.csv",
                         build_lr_logger, options=LR_LOGGER_OPTIONS)]
