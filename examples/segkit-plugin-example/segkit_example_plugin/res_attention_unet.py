"""A residual U-Net whose skip connections pass additive attention gates (Oktay et al., 2018).

Each level is a residual block (two 3x3 conv + batch-norm, added to a 1x1 projection of its
input). On the way up, the upsampled decoder features decide, pixel by pixel, how much of the
encoder's skip features to let through (:func:`attention_gate`), which suppresses background
texture that a plain U-Net copies across. The head is a 1x1 conv and a float32 softmax.

Everything is a standard Keras layer, on purpose: segkit reloads a run's checkpoint for
``eval``, ``infer`` and ``export`` without calling this plugin's builder, so a custom layer
would not be registered with Keras at that point (see docs/plugins.md, "Custom Keras objects").
The saved ``.keras`` file therefore loads with ``keras.saving.load_model`` alone.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers


def attention_gate(skip: Any, gate: Any, filters: int, prefix: str) -> Any:
    """``skip * sigmoid(w . relu(Wx skip + Wg gate))``: the decoder (``gate``) weighs each skip pixel."""
    projected = layers.Add(name=f"{prefix}_sum")([layers.Conv2D(filters, 1, name=f"{prefix}_skip")(skip),
                                                   layers.Conv2D(filters, 1, name=f"{prefix}_gate")(gate)])
    projected = layers.Activation("relu", name=f"{prefix}_relu")(projected)
    weights = layers.Conv2D(1, 1, activation="sigmoid", name=f"{prefix}_weights")(projected)
    return layers.Multiply(name=f"{prefix}_apply")([skip, weights])  # (B, H, W, 1) broadcasts over channels


def residual_block(x: Any, filters: int, prefix: str) -> Any:
    shortcut = x if x.shape[-1] == filters else layers.Conv2D(filters, 1, name=f"{prefix}_projection")(x)
    for n in (1, 2):
        # no bias: batch normalisation's beta plays that part
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                          name=f"{prefix}_conv{n}")(x)
        x = layers.BatchNormalization(name=f"{prefix}_bn{n}")(x)
        if n == 1:
            x = layers.Activation("relu", name=f"{prefix}_relu1")(x)
    x = layers.Add(name=f"{prefix}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{prefix}_out")(x)


def check_geometry(image_height: int, image_width: int, depth: int) -> None:
    step = 2 ** (depth - 1)
    for name, size in (("image_height", image_height), ("image_width", image_width)):
        if size % step:
            raise ValueError(f"{name}={size} must divide by 2**(depth-1) = {step} (depth={depth}); "
                             f"nearest: {max(step, size // step * step)} or {(size // step + 1) * step}")


def build_res_attention_unet(*, image_height: int, image_width: int, image_channels: int, num_classes: int,
                             filters: int = 16, depth: int = 4, dropout: float = 0.0,
                             attention: bool = True) -> keras.Model:
    """``(B, H, W, C)`` float32 in [0, 1] -> ``(B, H, W, num_classes)`` softmax."""
    check_geometry(image_height, image_width, depth)
    inputs = keras.Input((image_height, image_width, image_channels), name="image")
    x, skips = inputs, []
    for level in range(depth - 1):
        x = residual_block(x, filters * 2**level, f"enc{level}")
        skips.append(x)
        x = layers.MaxPool2D(2, name=f"enc{level}_pool")(x)
    x = residual_block(x, filters * 2 ** (depth - 1), "bridge")
    if dropout > 0:
        x = layers.Dropout(dropout, name="bridge_dropout")(x)
    for level in reversed(range(depth - 1)):
        width = filters * 2**level
        x = layers.Conv2DTranspose(width, 2, strides=2, padding="same", name=f"dec{level}_up")(x)
        skip = skips[level]
        if attention:
            skip = attention_gate(skip, x, max(1, width // 2), f"dec{level}_attention")
        x = layers.Concatenate(name=f"dec{level}_concat")([x, skip])
        x = residual_block(x, width, f"dec{level}")
    x = layers.Conv2D(num_classes, 1, name="head")(x)
    # float32 even under a mixed-precision policy: the loss and metrics need exact probabilities
    outputs = layers.Activation("softmax", dtype="float32", name="softmax")(x)
    return keras.Model(inputs, outputs, name="res_attention_unet")
