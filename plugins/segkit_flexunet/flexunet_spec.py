"""FlexUNet's ``[model]`` keys and the bridge from a ModelRequest to :func:`build_flexunet`.

Kept apart from ``flexunet.py`` so that registering the plugin imports no Keras.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from segkit.plugin import ModelFootprint, ModelRequest, Option
from segkit_flexunet.flexunet_rules import activation_count, check_geometry, parameter_count

if TYPE_CHECKING:
    import keras

FLEXUNET_OPTIONS = (
    Option("base_filters", "int", 16, "filters of the first encoder level (doubling per level)", minimum=1,
           maximum=1024),
    Option("base_kernels", "int_or_pair", [7, 7], "first kernel size, shrinking by 2 per level to 3",
           minimum=1, maximum=63),
    Option("num_layers", "int", 6, "encoder levels including the bridge; sizes must divide by 2**(n-1)",
           minimum=2, maximum=10),
    Option("dropout_rate", "float", 0.04, "dropout of level i is dropout_rate * i", minimum=0, maximum=0.5),
    Option("dilation", "int_or_pair", [1, 1], "first dilation rate, shrinking by 1 per level to 1",
           minimum=1, maximum=64),
    Option("normalization", "bool", False, "batch normalization after each convolution"),
    Option("activation", "str", "relu", "activation of the convolutions (a Keras activation name)"),
)


def _geometry(request: ModelRequest) -> dict[str, Any]:
    """The keyword arguments of :func:`check_geometry`, from a request's geometry and options."""
    options = request.options
    return {
        "image_height": request.image_height, "image_width": request.image_width,
        "image_channels": request.image_channels, "num_classes": request.num_classes,
        "base_filters": options["base_filters"], "base_kernels": tuple(options["base_kernels"]),
        "num_layers": options["num_layers"], "dropout_rate": options["dropout_rate"],
        "dilation": tuple(options["dilation"]),
    }


def check_request(request: ModelRequest) -> None:
    """FlexUNet's size and option rules without Keras: a ValueError before anything is written."""
    check_geometry(**_geometry(request))


def footprint(request: ModelRequest) -> ModelFootprint:
    """FlexUNet's weights and one image's layer outputs, by arithmetic (checked against Keras in the tests)."""
    geometry, options = _geometry(request), request.options
    kernel, _ = check_geometry(**geometry)
    parameters = parameter_count(image_channels=request.image_channels, num_classes=request.num_classes,
                                 base_filters=options["base_filters"], base_kernels=kernel,
                                 num_layers=options["num_layers"], normalization=options["normalization"])
    activations = activation_count(image_height=request.image_height, image_width=request.image_width,
                                   image_channels=request.image_channels, num_classes=request.num_classes,
                                   base_filters=options["base_filters"], num_layers=options["num_layers"],
                                   normalization=options["normalization"])
    return ModelFootprint(parameters, activations, ("base_filters", "base_kernels", "num_layers"))


def build_from_request(request: ModelRequest) -> keras.Model:
    from segkit_flexunet.flexunet import build_flexunet

    options = request.options
    return build_flexunet(**_geometry(request), normalization=options["normalization"],
                          activation=options["activation"])
