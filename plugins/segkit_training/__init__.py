"""segkit's built-in training plugin: losses, metrics and the epoch-change inferencer."""

from __future__ import annotations

from collections.abc import Iterable

from segkit.plugin import CallbackSpec, LossSpec, MetricSpec, hookimpl
from segkit_training.callback_builders import EPOCH_CHANGE_OPTIONS, epoch_change_inferencer
from segkit_training.loss_builders import DICE_CROSSENTROPY_OPTIONS, categorical_crossentropy, dice_crossentropy
from segkit_training.metric_sets import per_class_scores, reference_dice


@hookimpl
def segkit_losses() -> Iterable[LossSpec]:
    return [LossSpec("categorical_crossentropy", "Keras categorical cross-entropy on one-hot masks",
                     categorical_crossentropy),
            LossSpec("dice_crossentropy", "cross-entropy + soft Dice of the foreground classes (nnU-Net's default)",
                     dice_crossentropy, options=DICE_CROSSENTROPY_OPTIONS)]


@hookimpl
def segkit_metrics() -> Iterable[MetricSpec]:
    return [
        MetricSpec("dice_coef_multiclass", "reference Dice over all channels incl. background (per-batch mean)",
                   reference_dice),
        MetricSpec("per_class_scores", "Dice and IoU per class and mean foreground Dice, over the whole split",
                   per_class_scores, always=True),
    ]


@hookimpl
def segkit_callbacks() -> Iterable[CallbackSpec]:
    return [CallbackSpec("epoch-change-inferencer", "after each epoch, segments a few images and saves a montage",
                         epoch_change_inferencer, options=EPOCH_CHANGE_OPTIONS)]
