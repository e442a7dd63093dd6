"""FlexUNet: a U-Net whose depth, width, kernel sizes and dilation are set by a few numbers.

A Keras 3 re-implementation of the network of the reference project *TensorFlowFlexUNet*.
It is built only from standard Keras layers, so a saved ``.keras`` file loads with
``keras.saving.load_model(path)`` (``safe_mode`` on) and no ``custom_objects``.

Architecture, for ``num_layers = L``:

* **Encoder**: ``L`` levels; level ``i`` (0-based) has ``base_filters * 2**i`` filters and two
  ``Conv2D`` layers (``padding="same"``, ``he_normal``) with kernel
  ``max(3, k - 2*i)`` and dilation ``max(1, d - i)`` per axis, optionally each followed by
  ``BatchNormalization`` (conv -> BN -> activation), then ``Dropout(dropout_rate * i)``
  (omitted where the rate is 0) and ``MaxPool2D(2)``. The last level is the bridge: it is not
  pooled.
* **Decoder**: for ``i = L-2 .. 0``: ``Conv2DTranspose(filters_i, 2, strides=2)``, concatenation
  with the encoder output of level ``i``, two 3x3 convs (same activation / BN rules) and
  ``Dropout(dropout_rate * i)``.
* **Head**: a 1x1 ``Conv2D(num_classes)`` and a ``softmax`` kept in ``float32`` even under a
  ``mixed_float16`` policy.

The input is a float32 ``(H, W, C)`` image already scaled to ``[0, 1]``; ``H`` and ``W`` must be
multiples of :func:`divisor` ``(num_layers)``.
"""

from __future__ import annotations

import keras
from keras import layers

from segkit_flexunet.flexunet_rules import (
    Pair,
    check_geometry,
    divisor,
    level_dilation,
    level_kernel,
)

__all__ = ["build_flexunet", "divisor"]


def build_flexunet(
    *,
    image_height: int,
    image_width: int,
    image_channels: int,
    num_classes: int,
    base_filters: int = 16,
    base_kernels: int | tuple[int, int] = (7, 7),
    num_layers: int = 6,
    dropout_rate: float = 0.04,
    dilation: int | tuple[int, int] = (1, 1),
    normalization: bool = False,
    activation: str = "relu",
    name: str = "flexunet",
) -> keras.Model:
    """Build a FlexUNet as a functional ``keras.Model``.

    Args:
        image_height: Input height in pixels; a multiple of ``divisor(num_layers)``.
        image_width: Input width in pixels; a multiple of ``divisor(num_layers)``.
        image_channels: Number of input channels (1 for grey, 3 for RGB, ...).
        num_classes: Number of output classes (at least 2); the output holds one softmax
            probability per class and pixel.
        base_filters: Filters of the first level; level ``i`` has ``base_filters * 2**i``.
        base_kernels: Kernel size of the first encoder level, an odd int or a pair of odd ints
            ``(kh, kw)``. Level ``i`` uses ``max(3, k - 2*i)`` per axis (a kernel already
            smaller than 3, i.e. 1, stays as it is). Decoder convs are always 3x3.
        num_layers: Number of encoder levels including the bridge (at least 2).
        dropout_rate: Dropout step; level ``i`` (encoder and decoder) drops
            ``dropout_rate * i``. ``dropout_rate * (num_layers - 1)`` must be below 1.
        dilation: Dilation rate of the first encoder level, an int or a pair ``(dh, dw)``.
            Level ``i`` uses ``max(1, d - i)`` per axis. Decoder convs are not dilated.
        normalization: If ``True``, every conv is followed by ``BatchNormalization`` and the
            activation is applied after it (conv -> BN -> activation).
        activation: Name of the Keras activation of the hidden convs (e.g. ``"relu"``,
            ``"elu"``, ``"gelu"``).
        name: Name of the model.

    Returns:
        An uncompiled functional model mapping ``(batch, H, W, C)`` float32 images in
        ``[0, 1]`` to ``(batch, H, W, num_classes)`` float32 class probabilities.

    Raises:
        ValueError: If an argument is out of range, in particular if ``image_height`` or
            ``image_width`` is not a multiple of ``divisor(num_layers)``.
    """
    kernel, dilation_pair = check_geometry(
        image_height=image_height, image_width=image_width, image_channels=image_channels,
        num_classes=num_classes, base_filters=base_filters, base_kernels=base_kernels, num_layers=num_layers,
        dropout_rate=dropout_rate, dilation=dilation,
    )
    _check_activation(activation)

    inputs = keras.Input(shape=(image_height, image_width, image_channels), dtype="float32", name="image")
    bridge, skips = _encoder(
        inputs,
        base_filters=base_filters,
        base_kernels=kernel,
        num_layers=num_layers,
        dropout_rate=dropout_rate,
        dilation=dilation_pair,
        normalization=normalization,
        activation=activation,
    )
    x = _decoder(
        bridge,
        skips,
        base_filters=base_filters,
        dropout_rate=dropout_rate,
        normalization=normalization,
        activation=activation,
    )
    x = layers.Conv2D(num_classes, 1, padding="same", name="head_conv")(x)
    # Kept in float32 so that probabilities (and the loss) stay accurate under mixed precision.
    outputs = layers.Activation("softmax", dtype="float32", name="softmax")(x)
    return keras.Model(inputs=inputs, outputs=outputs, name=name)


def _conv_block(
    x: keras.KerasTensor,
    *,
    filters: int,
    kernel_size: Pair,
    dilation_rate: Pair,
    dropout_rate: float,
    normalization: bool,
    activation: str,
    prefix: str,
) -> keras.KerasTensor:
    """Apply two convolutions (each optionally batch-normalised) and a dropout.

    Args:
        x: Input tensor ``(batch, h, w, c)``.
        filters: Output channels of both convolutions.
        kernel_size: Kernel size ``(kh, kw)`` of both convolutions.
        dilation_rate: Dilation ``(dh, dw)`` of both convolutions.
        dropout_rate: Rate of the trailing ``Dropout``; no layer is added when it is 0.
        normalization: Whether to add ``BatchNormalization`` between each conv and its
            activation.
        activation: Name of the activation.
        prefix: Prefix of the layer names, e.g. ``"enc2"``.

    Returns:
        Output tensor ``(batch, h, w, filters)``.
    """
    for n in (1, 2):
        conv = layers.Conv2D(
            filters,
            kernel_size,
            padding="same",
            dilation_rate=dilation_rate,
            kernel_initializer="he_normal",
            # With BN the activation comes after the normalisation, and BN's beta replaces the bias.
            activation=None if normalization else activation,
            use_bias=not normalization,
            name=f"{prefix}_conv{n}",
        )
        x = conv(x)
        if normalization:
            x = layers.BatchNormalization(name=f"{prefix}_bn{n}")(x)
            x = layers.Activation(activation, name=f"{prefix}_act{n}")(x)
    if dropout_rate > 0:
        x = layers.Dropout(dropout_rate, name=f"{prefix}_dropout")(x)
    return x


def _encoder(
    x: keras.KerasTensor,
    *,
    base_filters: int,
    base_kernels: Pair,
    num_layers: int,
    dropout_rate: float,
    dilation: Pair,
    normalization: bool,
    activation: str,
) -> tuple[keras.KerasTensor, list[keras.KerasTensor]]:
    """Apply the contracting path.

    Args:
        x: Input images ``(batch, H, W, C)``.
        base_filters: Filters of level 0, doubled at each level.
        base_kernels: Kernel size of level 0, see :func:`level_kernel`.
        num_layers: Number of levels, the last being the bridge (not pooled).
        dropout_rate: Dropout step, level ``i`` drops ``dropout_rate * i``.
        dilation: Dilation of level 0, see :func:`level_dilation`.
        normalization: Whether to batch-normalise each conv.
        activation: Name of the activation.

    Returns:
        The bridge output and the outputs of levels ``0 .. num_layers - 2`` (the skips),
        in that order.
    """
    skips: list[keras.KerasTensor] = []
    for i in range(num_layers):
        x = _conv_block(
            x,
            filters=base_filters * 2**i,
            kernel_size=level_kernel(base_kernels, i),
            dilation_rate=level_dilation(dilation, i),
            dropout_rate=dropout_rate * i,
            normalization=normalization,
            activation=activation,
            prefix=f"enc{i}",
        )
        if i < num_layers - 1:
            skips.append(x)
            x = layers.MaxPool2D(2, name=f"enc{i}_pool")(x)
    return x, skips


def _decoder(
    x: keras.KerasTensor,
    skips: list[keras.KerasTensor],
    *,
    base_filters: int,
    dropout_rate: float,
    normalization: bool,
    activation: str,
) -> keras.KerasTensor:
    """Apply the expanding path.

    Args:
        x: Bridge output.
        skips: Encoder outputs of levels ``0 .. len(skips) - 1``.
        base_filters: Filters of level 0, doubled at each level.
        dropout_rate: Dropout step, level ``i`` drops ``dropout_rate * i``.
        normalization: Whether to batch-normalise each conv.
        activation: Name of the activation.

    Returns:
        The level-0 decoder output ``(batch, H, W, base_filters)``.
    """
    for i in reversed(range(len(skips))):
        filters = base_filters * 2**i
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"dec{i}_up")(x)
        x = layers.Concatenate(axis=-1, name=f"dec{i}_concat")([x, skips[i]])
        x = _conv_block(
            x,
            filters=filters,
            kernel_size=(3, 3),
            dilation_rate=(1, 1),
            dropout_rate=dropout_rate * i,
            normalization=normalization,
            activation=activation,
            prefix=f"dec{i}",
        )
    return x


def _check_activation(activation: str) -> None:
    """Raise ``ValueError`` unless ``activation`` names a Keras activation."""
    if not isinstance(activation, str):
        raise ValueError(f"activation must be the name of a Keras activation, got {activation!r}")
    try:
        keras.activations.get(activation)
    except ValueError as error:
        raise ValueError(f"activation {activation!r} is not a Keras activation") from error
