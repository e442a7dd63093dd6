"""Full-resolution prediction: tiles, Gaussian blending, padding, output sizes."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from segkit.data.tiles import pad_to, tile_origins
from segkit.engine.predict import probabilities, segment
from segkit.engine.prediction import Prediction
from segkit.engine.sliding_window import gaussian_weights, predict_full


@pytest.fixture(scope="module")
def model() -> keras.Model:
    from segkit_flexunet.flexunet import build_flexunet

    keras.utils.set_random_seed(0)
    return build_flexunet(image_height=32, image_width=32, image_channels=3, num_classes=3,
                          base_filters=4, base_kernels=3, num_layers=3, dropout_rate=0.0)


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_origins_cover_the_image_and_end_at_the_border() -> None:
    assert tile_origins((64, 96), (32, 32), 0.0) == [(y, x) for y in (0, 32) for x in (0, 32, 64)]
    assert tile_origins((70, 32), (32, 32), 0.5) == [(0, 0), (16, 0), (32, 0), (38, 0)]
    assert tile_origins((20, 20), (32, 32), 0.5) == [(0, 0)]


def test_exact_multiple_without_overlap_equals_the_untiled_tiles(model: keras.Model) -> None:
    image = _image(64, 96)
    tiled = predict_full(model, image, (32, 32), overlap=0.0)
    x = image.astype(np.float32) / 255.0
    for y in (0, 32):
        for left in (0, 32, 64):
            alone = np.asarray(model(x[None, y : y + 32, left : left + 32], training=False))[0]
            np.testing.assert_allclose(tiled[y : y + 32, left : left + 32], alone, atol=1e-5)


def test_pointwise_model_gives_the_whole_image_prediction_with_any_overlap() -> None:
    """With a 1x1 receptive field every tile agrees, so blending must reproduce the plain prediction."""
    inputs = keras.Input((32, 32, 3))
    pointwise = keras.Model(inputs, keras.layers.Conv2D(3, 1, activation="softmax")(inputs))
    whole_input = keras.Input((80, 72, 3))
    whole = keras.Model(whole_input, pointwise.layers[-1](whole_input))
    image = _image(80, 72, 1)
    expected = np.asarray(whole(image[None].astype(np.float32) / 255.0))[0]
    np.testing.assert_allclose(predict_full(pointwise, image, (32, 32), overlap=0.5), expected, atol=1e-5)


@pytest.mark.parametrize(("height", "width"), [(33, 45), (97, 53), (17, 20), (32, 32)])
def test_output_matches_input_size(model: keras.Model, height: int, width: int) -> None:
    how = Prediction(32, 32, "tile", overlap=0.5, batch_size=4)
    [probs] = probabilities(model, [_image(height, width)], how)
    assert probs.shape == (height, width, 3)
    np.testing.assert_allclose(probs.sum(axis=2), 1.0, atol=1e-4)
    [mask] = segment(model, [_image(height, width)], Prediction(32, 32, "resize"))
    assert mask.shape == (height, width) and mask.dtype == np.uint8


def test_small_images_are_padded_not_stretched(model: keras.Model) -> None:
    image = _image(20, 24)
    [probs] = probabilities(model, [image], Prediction(32, 32, "tile"))
    padded = pad_to(image, 32, 32, 0).astype(np.float32) / 255.0
    alone = np.asarray(model(padded[None], training=False))[0, :20, :24]
    np.testing.assert_allclose(probs, alone, atol=1e-5)


def test_flip_tta_averages_the_flipped_predictions(model: keras.Model) -> None:
    image = _image(32, 32, 2)
    x = image[None].astype(np.float32) / 255.0
    plain = np.asarray(model(x, training=False))[0]
    lr = np.asarray(model(x[:, :, ::-1], training=False))[0, :, ::-1]
    ud = np.asarray(model(x[:, ::-1], training=False))[0, ::-1]
    [probs] = probabilities(model, [image], Prediction(32, 32, "tile", tta=True))
    np.testing.assert_allclose(probs, (plain + lr + ud) / 3, atol=1e-5)


def test_gaussian_weights_peak_in_the_centre() -> None:
    weights = gaussian_weights(32, 32)[:, :, 0]
    assert weights.max() == pytest.approx(1.0) and weights.min() > 0
    assert weights[16, 16] > weights[8, 16] > weights[4, 16] >= weights[0, 0]
