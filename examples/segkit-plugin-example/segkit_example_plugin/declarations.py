"""The TOML keys of each builder and the bridges from segkit's requests to the Keras code.

segkit validates a project's ``[model]``, ``[loss]`` and ``[[callbacks]]`` tables against these
``Option`` records before anything is built, so a mistyped key is a one-line error with a
"did you mean". Nothing here imports Keras: each builder imports its module when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from segkit.plugin import CallbackRequest, LossRequest, ModelRequest, Option

if TYPE_CHECKING:
    import keras

RES_UNET_OPTIONS = (
    Option("filters", "int", 16, "filters of the first level, doubling per level", minimum=1,
           maximum=1024),
    Option("depth", "int", 4, "levels including the bridge; image sizes must divide by 2**(depth-1)",
           minimum=2, maximum=7),
    Option("dropout", "float", 0.0, "dropout after the bridge", minimum=0, maximum=0.9),
    Option("attention", "bool", True, "gate each skip connection with the decoder's attention"),
)
FOCAL_TVERSKY_OPTIONS = (
    Option("alpha", "float", 0.3, "weight of false positives in the Tversky index", minimum=0),
    Option("beta", "float", 0.7, "weight of false negatives in the Tversky index", minimum=0),
    Option("gamma", "float", 0.75, "exponent of 1 - index; below 1 keeps learning on classes already mostly right",
           minimum=0.1, maximum=3),
    Option("ce_weight", "float", 1.0, "weight of the cross-entropy term", minimum=0),
    Option("smooth", "float", 1.0, "added to the index's numerator and denominator (empty classes score 1)",
           minimum=0),
)
LR_LOGGER_OPTIONS = (
    Option("filename", "str", "lr_log.csv", "CSV file name inside the run folder"),
)


def build_res_attention_unet(request: ModelRequest) -> keras.Model:
    from segkit_example_plugin.res_attention_unet import build_res_attention_unet as build

    options = request.options
    return build(image_height=request.image_height, image_width=request.image_width,
                 image_channels=request.image_channels, num_classes=request.num_classes,
                 filters=options["filters"], depth=options["depth"], dropout=options["dropout"],
                 attention=options["attention"])


def build_focal_tversky(request: LossRequest) -> keras.losses.Loss:
    from segkit_example_plugin.focal_tversky import FocalTverskyCrossEntropy

    options = request.options
    if options["alpha"] + options["beta"] == 0:
        raise ValueError("alpha and beta are both 0: the index would ignore every error; raise either")
    return FocalTverskyCrossEntropy(**{option.name: options[option.name] for option in FOCAL_TVERSKY_OPTIONS})


def build_lr_logger(request: CallbackRequest) -> keras.callbacks.Callback:
    from segkit_example_plugin.lr_logger import LearningRateLogger

    filename = request.options["filename"]
    # a ValueError from a builder becomes segkit's one-line error on this callback's key
    if "/" in filename or "\\" in filename or filename in ("", ".", ".."):
        raise ValueError(f"filename '{filename}' must be a plain file name; it is written into the run folder")
    return LearningRateLogger(request.output_dir / filename)
