"""FlexUNet's rules on its options and its size, by arithmetic alone: no Keras is imported here.

``segkit train`` calls :func:`check_geometry` (through the spec's ``check``) before anything is
written and before TensorFlow loads, so a size FlexUNet cannot take (65 px with ``num_layers = 3``)
costs a second and leaves the run folder as it was.
:func:`segkit_flexunet.flexunet.build_flexunet` applies the same rules again.
"""

from __future__ import annotations

Pair = tuple[int, int]


def divisor(num_layers: int) -> int:
    """Return the factor the image height and width must be multiples of.

    The encoder halves the spatial size ``num_layers - 1`` times, so tiles fed to a FlexUNet
    of ``num_layers`` levels must be divisible by ``2 ** (num_layers - 1)``.

    Args:
        num_layers: Number of encoder levels, bridge included (at least 2).

    Returns:
        ``2 ** (num_layers - 1)``.

    Raises:
        ValueError: If ``num_layers`` is not an integer of at least 2.
    """
    _check_int("num_layers", num_layers, minimum=2)
    return 2 ** (num_layers - 1)


def level_kernel(base_kernels: Pair, level: int) -> Pair:
    """Return the encoder kernel size of ``level``: ``max(3, k - 2*level)`` per axis.

    A kernel smaller than 3 (only 1 is possible, kernels being odd) is kept as it is.

    Args:
        base_kernels: Kernel size ``(kh, kw)`` of level 0.
        level: 0-based encoder level.

    Returns:
        The kernel size ``(kh, kw)`` of that level.
    """
    kh, kw = base_kernels
    return (max(min(kh, 3), kh - 2 * level), max(min(kw, 3), kw - 2 * level))


def level_dilation(dilation: Pair, level: int) -> Pair:
    """Return the encoder dilation rate of ``level``: ``max(1, d - level)`` per axis.

    Args:
        dilation: Dilation rate ``(dh, dw)`` of level 0.
        level: 0-based encoder level.

    Returns:
        The dilation rate ``(dh, dw)`` of that level.
    """
    dh, dw = dilation
    return (max(1, dh - level), max(1, dw - level))


def check_geometry(*, image_height: int, image_width: int, image_channels: int, num_classes: int,
                   base_filters: int, base_kernels: int | Pair, num_layers: int, dropout_rate: float,
                   dilation: int | Pair) -> tuple[Pair, Pair]:
    """Raise ``ValueError`` for any option FlexUNet cannot take; return ``(kernel, dilation)`` as pairs."""
    _check_int("num_layers", num_layers, minimum=2)
    _check_int("image_channels", image_channels, minimum=1)
    _check_int("num_classes", num_classes, minimum=2)
    _check_int("base_filters", base_filters, minimum=1)
    kernel = _pair("base_kernels", base_kernels)
    for k in kernel:
        if k % 2 == 0:
            raise ValueError(f"base_kernels must be odd (1, 3, 5, ...), got {base_kernels!r}")
    dilation_pair = _pair("dilation", dilation)
    _check_dropout(dropout_rate, num_layers)
    step = divisor(num_layers)
    for size_name, size in (("image_height", image_height), ("image_width", image_width)):
        _check_int(size_name, size, minimum=1)
        if size % step:
            raise ValueError(_divisibility_message(size_name, size, step, num_layers))
    return kernel, dilation_pair


def parameter_count(*, image_channels: int, num_classes: int, base_filters: int, base_kernels: Pair,
                    num_layers: int, normalization: bool) -> int:
    """The number of weights :func:`~segkit_flexunet.flexunet.build_flexunet` creates (BN statistics included)."""
    def conv(inputs: int, filters: int, kernel: Pair) -> int:
        # with BN there is no bias, and BN holds gamma, beta, moving mean and moving variance
        return inputs * filters * kernel[0] * kernel[1] + (4 * filters if normalization else filters)

    total, inputs = 0, image_channels
    for i in range(num_layers):
        filters = base_filters * 2**i
        kernel = level_kernel(base_kernels, i)
        total += conv(inputs, filters, kernel) + conv(filters, filters, kernel)
        inputs = filters
    for i in reversed(range(num_layers - 1)):
        filters = base_filters * 2**i
        total += inputs * filters * 4 + filters  # the 2x2 transposed convolution
        total += conv(2 * filters, filters, (3, 3)) + conv(filters, filters, (3, 3))
        inputs = filters
    return total + inputs * num_classes + num_classes


def activation_count(*, image_height: int, image_width: int, image_channels: int, num_classes: int,
                     base_filters: int, num_layers: int, normalization: bool) -> int:
    """Values the layer outputs of one image hold: what training keeps for the backward pass.

    A lower bound: dropout masks, gradients and TensorFlow's workspace come on top.
    """
    per_conv = 3 if normalization else 1  # conv, then BN and activation outputs
    total = image_height * image_width * (image_channels + 2 * num_classes)  # input, head, softmax
    for i in range(num_layers):
        pixels = (image_height >> i) * (image_width >> i)
        filters = base_filters * 2**i
        total += 2 * per_conv * pixels * filters  # the encoder level's two convolutions
        if i < num_layers - 1:
            total += (pixels // 4) * filters  # its pooled output
            total += (3 + 2 * per_conv) * pixels * filters  # decoder: upsampled, concatenated, two convs
    return total


def _check_int(name: str, value: object, *, minimum: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _pair(name: str, value: int | tuple[int, int] | list[int]) -> Pair:
    """Return ``value`` as a pair of positive ints; an int ``n`` becomes ``(n, n)``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an integer or a pair of integers, got {value!r}")
        pair = (value[0], value[1])
    else:
        pair = (value, value)
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer or a pair of them, got {value!r}")
    return pair


def _check_dropout(dropout_rate: float, num_layers: int) -> None:
    """Raise ``ValueError`` unless every level's rate ``dropout_rate * i`` lies in ``[0, 1)``."""
    if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, (int, float)):
        raise ValueError(f"dropout_rate must be a number, got {dropout_rate!r}")
    if dropout_rate < 0:
        raise ValueError(f"dropout_rate must be at least 0, got {dropout_rate}")
    deepest = dropout_rate * (num_layers - 1)
    if deepest >= 1:
        raise ValueError(
            f"dropout_rate={dropout_rate} gives the deepest level (num_layers={num_layers}) a rate of "
            f"{deepest:g}; dropout_rate * (num_layers - 1) must be below 1"
        )


def _divisibility_message(size_name: str, size: int, step: int, num_layers: int) -> str:
    """Explain that ``size`` is not a multiple of ``step`` and name the nearest valid sizes."""
    lower = (size // step) * step
    upper = lower + step
    nearest = f"{lower} or {upper}" if lower > 0 else f"{upper}"
    return (
        f"{size_name}={size} is not divisible by {step} (2**(num_layers-1) with num_layers={num_layers}); "
        f"nearest valid sizes: {nearest}"
    )
