"""The tf.data input pipeline: file pairs in, ``(image, one-hot mask[, weights])`` batches out.

Files are listed, decoded in parallel by the dataset plugin's ``load`` (Pillow releases the GIL
while decoding) and brought to the model size; masks travel as uint8 class indices and become
one-hot only at the end of the pipeline, so a cached pair costs ``H·W·(C+1)`` bytes, not a float
per class. Training shuffles pair indices before decoding, so nothing waits for the whole set and
memory does not grow with it; ``[train] cache`` keeps decoded pairs (:mod:`segkit.data.decoded_store`).
Augmentation runs after the cache, so every epoch sees new variants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from segkit.classes import IGNORE_INDEX
from segkit.data.decoded_store import DecodedStore
from segkit.data.load_failures import keeping_load_failure
from segkit.data.pairing import Pair
from segkit.data.resize import resize_image, resize_mask
from segkit.data.stain_augment import channel_jitter, hed_jitter
from segkit.data.tiles import pad_to, tile_origins
from segkit.specs import DatasetSource

Cache = Literal["none", "memory", "disk"]


@dataclass(frozen=True, kw_only=True)
class Augment:
    """Online augmentation of training pairs; geometry is shared by image and mask.

    The fields are ``[augment]``'s transforms by their key names, taken from the project's section
    (``pipeline_settings``) and without defaults of their own: the section's declarations hold the
    defaults, and a second set here would disagree with them.
    """

    flips: bool
    rotate90: bool
    stain_jitter: float
    rotate: bool
    zoom: float
    hed_jitter: float

    @property
    def resamples(self) -> bool:
        """Whether windows are resampled (turned by any angle or scaled) instead of cut out as they are."""
        return self.rotate or self.zoom > 0


#: every transform off: crop mode without ``[augment]`` runs the training path with this
NO_AUGMENT = Augment(flips=False, rotate90=False, stain_jitter=0.0, rotate=False, zoom=0.0, hed_jitter=0.0)


@dataclass(frozen=True)
class PipelineSettings:
    """How pairs become batches. ``crop`` takes model-size windows instead of resizing whole images:
    random windows when ``augment`` is set (training), a grid of tiles covering each image otherwise."""

    height: int
    width: int
    channels: int
    num_classes: int
    batch_size: int
    seed: int
    with_weights: bool = False
    crop: bool = False
    crops_per_image: int = 1
    cache: Cache = "none"
    cache_dir: Path | None = None
    augment: Augment | None = None

    @property
    def tiled(self) -> bool:
        """Whether each pair becomes a grid of model-size tiles (crop mode without augmentation)."""
        return self.crop and self.augment is None


def load_resized(source: DatasetSource, pair: Pair, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One pair decoded by the plugin and brought to the model size (bilinear image, nearest mask)."""
    image, mask = source.load(pair)
    return resize_image(image, height, width), resize_mask(mask, height, width)


def load_tiles(source: DatasetSource, pair: Pair, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A grid of model-size tiles covering the whole pair; padding is ignored (IGNORE_INDEX)."""
    image, mask = source.load(pair)
    image, mask = pad_to(image, height, width, 0), pad_to(mask, height, width, IGNORE_INDEX)
    origins = tile_origins(image.shape[:2], (height, width), overlap=0.0)
    images = np.stack([image[y : y + height, x : x + width] for y, x in origins])
    masks = np.stack([mask[y : y + height, x : x + width] for y, x in origins])
    return images, masks


def _decoder(source: DatasetSource, pairs: Sequence[Pair], settings: PipelineSettings, name: str, tf: Any
             ) -> Callable[[Any], tuple[Any, Any]]:
    """A tf function from a pair index to its decoded uint8 ``(image, mask)`` (tiles in tiled mode)."""
    h, w, c = settings.height, settings.width, settings.channels
    tiled = settings.tiled
    layout = "tiles" if tiled else "padded" if settings.crop else "resized"
    store = DecodedStore(settings.cache, settings.cache_dir, f"{name}-{h}x{w}-{layout}")

    def decode_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
        if tiled:
            return load_tiles(source, pair, h, w)
        if settings.crop:
            image, mask = source.load(pair)
            return pad_to(image, h, w, 0), pad_to(mask, h, w, IGNORE_INDEX)
        return load_resized(source, pair, h, w)

    def decode(index: Any) -> tuple[np.ndarray, np.ndarray]:
        pair = pairs[int(index)]
        return store.get(int(index), pair, lambda: decode_pair(pair))

    def tf_decode(index: Any) -> tuple[Any, Any]:
        image, mask = tf.numpy_function(keeping_load_failure(decode), [index], (tf.uint8, tf.uint8), stateful=False)
        if tiled:
            image.set_shape((None, h, w, c))
            mask.set_shape((None, h, w))
        else:
            image.set_shape((None, None, c) if settings.crop else (h, w, c))
            mask.set_shape((None, None) if settings.crop else (h, w))
        return image, mask

    return tf_decode


def _augmented(image: Any, mask: Any, seed: Any, settings: PipelineSettings, tf: Any) -> tuple[Any, Any]:
    """Random crop (crop mode), turn and zoom, flips, 90° turns and colour jitter from one per-element seed."""
    augment = settings.augment
    assert augment is not None
    seeds = tf.random.experimental.stateless_split(tf.stack([seed, tf.constant(0, tf.int64)]), 7)
    if augment.resamples:
        centre = _labelled_centre(mask, settings, seeds[0], tf) if settings.crop else tf.shape(mask)[:2] // 2
        image, mask = _resampled_window(image, mask, centre, settings, seeds[5], tf)
    elif settings.crop:
        image, mask = _labelled_window(image, mask, settings, seeds[0], tf)
    mask = mask[:, :, None]
    if augment.flips:
        for i, flip in ((1, tf.image.flip_left_right), (2, tf.image.flip_up_down)):
            do = tf.random.stateless_uniform((), seeds[i]) < 0.5
            image, mask = tf.cond(do, lambda: (flip(image), flip(mask)), lambda: (image, mask))
    if augment.rotate90 and settings.height == settings.width:
        turns = tf.random.stateless_uniform((), seeds[3], 0, 4, dtype=tf.int32)
        image, mask = tf.image.rot90(image, turns), tf.image.rot90(mask, turns)
    if augment.stain_jitter > 0:
        image = channel_jitter(image, augment.stain_jitter, seeds[4], tf)
    if augment.hed_jitter > 0:
        image = hed_jitter(image, augment.hed_jitter, seeds[6], tf)
    return image, mask[:, :, 0]


def _labelled_centre(mask: Any, settings: PipelineSettings, seed: Any, tf: Any) -> Any:
    """A random labelled (not ignored) pixel as ``[row, column]``; a random one if none is labelled.

    With partial annotation most of an image is ignored; uniform crops would mostly teach
    nothing, so, like nnU-Net's foreground oversampling, windows are drawn around labels.
    Images are padded to at least the window size upstream.
    """
    height, width = settings.height, settings.width
    shape = tf.shape(mask, out_type=tf.int64)
    labelled = tf.where(tf.not_equal(mask, IGNORE_INDEX))
    count = tf.shape(labelled, out_type=tf.int64)[0]
    pick = tf.random.stateless_uniform((), seed, 0, tf.int64.max, dtype=tf.int64)
    uniform = tf.stack([pick % (shape[0] - height + 1), (pick // 7919) % (shape[1] - width + 1)])
    return tf.cond(count > 0, lambda: labelled[pick % tf.maximum(count, 1)], lambda: uniform + [height // 2, width // 2])


def _labelled_window(image: Any, mask: Any, settings: PipelineSettings, seed: Any, tf: Any) -> tuple[Any, Any]:
    """A model-size window cut out around a random labelled pixel, kept inside the image."""
    height, width = settings.height, settings.width
    shape = tf.shape(mask, out_type=tf.int64)
    centre = _labelled_centre(mask, settings, seed, tf)
    top = tf.clip_by_value(centre[0] - height // 2, 0, shape[0] - height)
    left = tf.clip_by_value(centre[1] - width // 2, 0, shape[1] - width)
    window = image[top : top + height, left : left + width], mask[top : top + height, left : left + width]
    return (tf.ensure_shape(window[0], (height, width, settings.channels)), tf.ensure_shape(window[1], (height, width)))


def _resampled_window(image: Any, mask: Any, centre: Any, settings: PipelineSettings, seed: Any, tf: Any
                      ) -> tuple[Any, Any]:
    """A model-size window around ``centre``, turned by a random angle and scaled by a random factor.

    One affine map per window (Keras's RandomRotation and RandomZoom use the same op): bilinear
    for the image, nearest for the mask, so labels stay labels and ignored pixels stay ignored.
    The centre is moved inwards until the turned window lies inside the image; where the image
    is too small for that, the edge is mirrored.
    """
    augment = settings.augment
    assert augment is not None
    height, width = settings.height, settings.width
    angle = tf.random.stateless_uniform((), seed, 0.0, 2 * np.pi) if augment.rotate else tf.constant(0.0)
    scale = tf.random.stateless_uniform((), seed + 1, 1 - augment.zoom, 1 + augment.zoom)
    cos, sin = scale * tf.cos(angle), scale * tf.sin(angle)
    reach = tf.stack([tf.abs(cos) * height + tf.abs(sin) * width, tf.abs(sin) * height + tf.abs(cos) * width]) / 2
    last = tf.cast(tf.shape(mask)[:2] - 1, tf.float32)  # the last row and column
    low, high = tf.minimum(reach, last / 2), tf.maximum(last - reach, last / 2)
    row, col = tf.unstack(tf.clip_by_value(tf.cast(centre, tf.float32), low, high))
    # output (x, y) reads input (x', y') = centre + scale * rotation @ ((x, y) - window centre)
    transform = tf.stack([cos, -sin, col - cos * width / 2 + sin * height / 2,
                          sin, cos, row - sin * width / 2 - cos * height / 2, 0.0, 0.0])[None]

    def resample(pixels: Any, interpolation: str) -> Any:
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=pixels[None], transforms=transform, output_shape=[height, width], fill_value=0.0,
            interpolation=interpolation, fill_mode="REFLECT")[0]

    turned = resample(tf.cast(image, tf.float32), "BILINEAR")
    image = tf.cast(tf.clip_by_value(tf.round(turned), 0.0, 255.0), tf.uint8)
    mask = resample(mask[:, :, None], "NEAREST")[:, :, 0]
    return (tf.ensure_shape(image, (height, width, settings.channels)), tf.ensure_shape(mask, (height, width)))


def _to_model(settings: PipelineSettings, tf: Any) -> Any:
    def to_model(image: Any, mask: Any) -> tuple[Any, ...]:
        x = tf.cast(image, tf.float32) / 255.0
        y = tf.one_hot(tf.cast(mask, tf.int32), settings.num_classes, dtype=tf.float32)
        if not settings.with_weights:
            return x, y
        # integer weights: Keras's confusion-matrix metrics count in int64 and warn on floats
        return x, y, tf.cast(tf.not_equal(mask, IGNORE_INDEX), tf.int32)

    return to_model


def make_dataset(source: DatasetSource, pairs: Sequence[Pair], settings: PipelineSettings, name: str = "data") -> Any:
    """Batches of ``pairs`` in file order (validation, test): resized, or tiled in crop mode."""
    import tensorflow as tf

    decode = _decoder(source, pairs, settings, name, tf)
    dataset = tf.data.Dataset.range(len(pairs)).map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if settings.tiled:  # each pair gave a stack of tiles
        dataset = dataset.unbatch()
    dataset = dataset.batch(settings.batch_size).map(_to_model(settings, tf), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _check_global_seed() -> None:
    """tf.data pairs each op seed with TensorFlow's global seed and compares the pair with (0, 0),
    which fails deep inside tracing when the global seed is 0 and the op seed a tensor (the
    per-epoch seeds below are); say so plainly instead. segkit's own runs never set 0."""
    from tensorflow.python.framework import random_seed

    if random_seed.get_seed(None)[0] == 0:
        raise ValueError("TensorFlow's global seed is 0 (tf.random.set_seed(0) or keras.utils.set_random_seed(0)); "
                         "tf.data cannot combine it with per-epoch seeds: set another global seed first")


def make_training_dataset(
    source: DatasetSource, pairs: Sequence[Pair], settings: PipelineSettings, first_epoch: int, epochs: int,
) -> tuple[Any, int]:
    """Shuffled, augmented batches for epochs ``first_epoch..epochs-1`` and the steps per epoch.

    Each epoch's order and augmentation depend only on ``(seed, epoch)``, so a run resumed at
    epoch k sees exactly the batches an uninterrupted run would have seen from epoch k on.
    """
    import tensorflow as tf

    _check_global_seed()
    # without [augment] the same path runs with every transform off (crop mode still crops)
    augment = settings.augment or NO_AUGMENT
    augmenting = PipelineSettings(**{**settings.__dict__, "augment": augment})
    decode = _decoder(source, pairs, augmenting, "train", tf)
    # several windows of one image per epoch (crop mode): more steps from the same files
    repeats = settings.crops_per_image if settings.crop else 1
    count = len(pairs) * repeats

    def epoch_batches(epoch: Any) -> Any:
        seed = tf.constant(settings.seed, tf.int64) * 100_003 + epoch
        # indices are shuffled, not decoded pairs: the buffer fills at once and the first
        # batch waits for batch_size decodes instead of the whole set
        order = tf.data.Dataset.range(count).shuffle(max(count, 1), seed=seed)
        decoded = order.map(lambda i: decode(i % len(pairs)), num_parallel_calls=tf.data.AUTOTUNE,
                            deterministic=True)
        randoms = tf.data.Dataset.random(seed=seed)
        varied = tf.data.Dataset.zip((decoded, randoms)).map(
            lambda pair, element_seed: _augmented(pair[0], pair[1], element_seed, augmenting, tf),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return varied.batch(settings.batch_size).map(_to_model(settings, tf), num_parallel_calls=tf.data.AUTOTUNE)

    dataset = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch_batches)
    steps = -(-count // settings.batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE), steps
