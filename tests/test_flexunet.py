"""Tests of the FlexUNet model builder (tiny models, CPU, a few seconds in all)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
from keras import layers

from segkit_flexunet.flexunet import build_flexunet, divisor

TINY = dict(image_height=32, image_width=32, image_channels=3, num_classes=3, base_filters=4, num_layers=3)


def _layer(model: keras.Model, name: str) -> keras.layers.Layer:
    return model.get_layer(name)


def _names(model: keras.Model, cls: type) -> list[str]:
    return [layer.name for layer in model.layers if isinstance(layer, cls)]


def _images(batch: int = 2, height: int = 32, width: int = 32, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(0).random((batch, height, width, channels), dtype=np.float32)


@pytest.fixture
def mixed_float16() -> Iterator[None]:
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_divisor() -> None:
    assert divisor(2) == 2
    assert divisor(3) == 4
    assert divisor(6) == 32
    with pytest.raises(ValueError, match="num_layers"):
        divisor(1)


@pytest.mark.parametrize(("height", "width"), [(32, 32), (32, 64)])
def test_output_shape_and_probabilities(height: int, width: int) -> None:
    model = build_flexunet(**{**TINY, "image_height": height, "image_width": width, "num_classes": 4})
    assert model.name == "flexunet"
    assert tuple(model.input.shape) == (None, height, width, 3)
    assert tuple(model.output.shape) == (None, height, width, 4)
    probs = keras.ops.convert_to_numpy(model(_images(2, height, width), training=False))
    assert probs.shape == (2, height, width, 4)
    assert probs.dtype == np.float32
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)


def test_levels_filters_kernels_and_dilation() -> None:
    model = build_flexunet(
        **{**TINY, "num_layers": 4, "base_kernels": 7, "dilation": (3, 2), "name": "deep"}
    )
    assert model.name == "deep"
    expected_kernels = [(7, 7), (5, 5), (3, 3), (3, 3)]
    expected_dilation = [(3, 2), (2, 1), (1, 1), (1, 1)]
    for i in range(4):
        for n in (1, 2):
            conv = _layer(model, f"enc{i}_conv{n}")
            assert conv.filters == 4 * 2**i
            assert tuple(conv.kernel_size) == expected_kernels[i]
            assert tuple(conv.dilation_rate) == expected_dilation[i]
            assert conv.padding == "same"
            assert conv.get_config()["kernel_initializer"]["class_name"] == "HeNormal"
            assert conv.get_config()["activation"] == "relu"
    # The bridge (level 3) is not pooled; every other level is.
    assert _names(model, layers.MaxPooling2D) == ["enc0_pool", "enc1_pool", "enc2_pool"]
    # Decoder: from level 2 down to 0, upsampling then 3x3 undilated convs.
    assert _names(model, layers.Conv2DTranspose) == ["dec2_up", "dec1_up", "dec0_up"]
    for i in (2, 1, 0):
        up = _layer(model, f"dec{i}_up")
        assert up.filters == 4 * 2**i
        assert tuple(up.kernel_size) == (2, 2)
        assert tuple(up.strides) == (2, 2)
        for n in (1, 2):
            conv = _layer(model, f"dec{i}_conv{n}")
            assert conv.filters == 4 * 2**i
            assert tuple(conv.kernel_size) == (3, 3)
            assert tuple(conv.dilation_rate) == (1, 1)
        # The skip of level i is concatenated: upsampled + skip channels.
        assert _layer(model, f"dec{i}_concat").output.shape[-1] == 2 * 4 * 2**i
    head = _layer(model, "head_conv")
    assert head.filters == 3
    assert tuple(head.kernel_size) == (1, 1)
    assert model.layers[-1].name == "softmax"


def test_rectangular_kernels_shrink_per_axis() -> None:
    model = build_flexunet(**{**TINY, "num_layers": 4, "base_kernels": (9, 5)})
    kernels = [tuple(_layer(model, f"enc{i}_conv1").kernel_size) for i in range(4)]
    assert kernels == [(9, 5), (7, 3), (5, 3), (3, 3)]


def test_kernel_one_is_not_enlarged() -> None:
    model = build_flexunet(**{**TINY, "base_kernels": 1})
    assert [tuple(_layer(model, f"enc{i}_conv1").kernel_size) for i in range(3)] == [(1, 1)] * 3


def test_dropout_rates_per_level() -> None:
    model = build_flexunet(**{**TINY, "num_layers": 4, "dropout_rate": 0.1})
    rates = {layer.name: layer.rate for layer in model.layers if isinstance(layer, layers.Dropout)}
    assert rates.keys() == {"enc1_dropout", "enc2_dropout", "enc3_dropout", "dec2_dropout", "dec1_dropout"}
    for name, rate in rates.items():
        level = int(name[3])
        assert rate == pytest.approx(0.1 * level)


def test_no_dropout_layers_when_rate_is_zero() -> None:
    model = build_flexunet(**{**TINY, "dropout_rate": 0.0})
    assert _names(model, layers.Dropout) == []


def test_batch_normalization_only_when_asked() -> None:
    plain = build_flexunet(**TINY)
    assert _names(plain, layers.BatchNormalization) == []
    assert _layer(plain, "enc0_conv1").use_bias

    normed = build_flexunet(**{**TINY, "normalization": True, "activation": "elu"})
    # Two per conv block: 3 encoder levels + 2 decoder levels.
    assert len(_names(normed, layers.BatchNormalization)) == 2 * (3 + 2)
    conv = _layer(normed, "enc1_conv2")
    assert conv.get_config()["activation"] == "linear"
    # conv -> BN -> activation
    bn = _layer(normed, "enc1_bn2")
    act = _layer(normed, "enc1_act2")
    assert bn.input is conv.output
    assert act.input is bn.output
    assert act.get_config()["activation"] == "elu"


@pytest.mark.usefixtures("mixed_float16")
def test_softmax_stays_float32_under_mixed_precision() -> None:
    model = build_flexunet(**TINY)
    assert model.input.dtype == "float32"
    assert _layer(model, "enc0_conv1").compute_dtype == "float16"
    assert _layer(model, "head_conv").output.dtype == "float16"
    assert model.output.dtype == "float32"
    probs = keras.ops.convert_to_numpy(model(_images(), training=False))
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-3)


# Keras 3.15 + TF 2.21 + NumPy 2.4 warn from inside `model.save` (tf.Variable.__array__ lacks `copy=`).
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_save_and_load_without_custom_objects(tmp_path: Path) -> None:
    model = build_flexunet(**{**TINY, "normalization": True, "dropout_rate": 0.2, "dilation": 2})
    path = tmp_path / "flexunet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode on, no custom_objects
    assert loaded.name == model.name
    images = _images()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(images, training=False)),
        keras.ops.convert_to_numpy(model(images, training=False)),
        atol=1e-6,
    )


def test_int_and_pair_arguments_build_the_same_model() -> None:
    keras.utils.set_random_seed(1)
    from_ints = build_flexunet(**{**TINY, "base_kernels": 5, "dilation": 2})
    keras.utils.set_random_seed(1)
    from_pairs = build_flexunet(**{**TINY, "base_kernels": (5, 5), "dilation": (2, 2)})
    assert from_ints.get_config() == from_pairs.get_config()
    images = _images()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(from_ints(images, training=False)),
        keras.ops.convert_to_numpy(from_pairs(images, training=False)),
        atol=1e-6,
    )


def test_size_not_divisible_names_size_and_nearest_valid_sizes() -> None:
    with pytest.raises(ValueError, match=r"image_height=30 .*divisible by 4.*28 or 32"):
        build_flexunet(**{**TINY, "image_height": 30})
    with pytest.raises(ValueError, match=r"image_width=100 .*divisible by 32.*96 or 128"):
        build_flexunet(**{**TINY, "image_height": 64, "image_width": 100, "num_layers": 6})
    with pytest.raises(ValueError, match=r"image_width=2 .*nearest valid sizes: 4$"):
        build_flexunet(**{**TINY, "image_width": 2})


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ({"num_layers": 1}, "num_layers must be at least 2"),
        ({"base_filters": 0}, "base_filters must be at least 1"),
        ({"num_classes": 1}, "num_classes must be at least 2"),
        ({"image_channels": 0}, "image_channels must be at least 1"),
        ({"base_kernels": 4}, "base_kernels must be odd"),
        ({"base_kernels": (7, 6)}, "base_kernels must be odd"),
        ({"base_kernels": 0}, "base_kernels must be a positive integer"),
        ({"base_kernels": (3, 3, 3)}, "base_kernels must be an integer or a pair"),
        ({"dilation": 0}, "dilation must be a positive integer"),
        ({"dropout_rate": -0.1}, "dropout_rate must be at least 0"),
        ({"dropout_rate": 0.5}, r"dropout_rate \* \(num_layers - 1\) must be below 1"),
        ({"activation": "nope"}, "not a Keras activation"),
    ],
)
def test_invalid_arguments(override: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        build_flexunet(**{**TINY, **override})
