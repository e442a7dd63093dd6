"""The project file's sections as typed records, each key declared once as a field with its option.

A field made with :func:`~segkit.options.setting` is both the record's attribute and the TOML key
(kind, default, bounds, help); the Option tuples the loader validates against, the docs' key
table and ``segkit init``'s limits are derived from these records, so they cannot disagree.
The records take no defaults and only keywords: they are built from validated tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from segkit.options import Option, options_of, setting

#: largest model input side; larger images are segmented in windows of the model input size
MAX_INPUT_SIZE = 8192
#: largest batch; more images per step than this fit no accelerator at any useful size
MAX_BATCH = 1024
#: largest number of epochs, and of epochs to wait for an improvement
MAX_EPOCHS = 100_000
#: most folds of a cross-validation (each one a whole training run)
MAX_FOLDS = 1000


@dataclass(frozen=True, kw_only=True)
class PluginSection:
    """A section that names a plugin: the name and the plugin's own validated keys."""

    name: str = setting("str", help="plugin name, see `segkit plugins`")
    #: the keys the plugin declares, validated, as its builder receives them
    options: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class ModelSection(PluginSection):
    name: str = setting("str", help="model plugin, e.g. 'flexunet' (see `segkit plugins`)")
    image_width: int = setting("int", help="model input width in pixels", minimum=8, maximum=MAX_INPUT_SIZE)
    image_height: int = setting("int", help="model input height in pixels", minimum=8, maximum=MAX_INPUT_SIZE)
    image_channels: int = setting("int", 3, "1 (grayscale) or 3 (RGB)", minimum=1, maximum=3)
    microns_per_pixel: float | None = setting(
        "float", None, "pixel size in µm the model was trained at: slides are read at this resolution (not set: "
        "slides cannot be segmented; take it from the training images' scanner, never guess it)",
        minimum=0.01, maximum=100)


@dataclass(frozen=True, kw_only=True)
class OptimizerSection:
    name: str = setting("str", "adam", "optimizer", choices=("adam", "adamw"))
    learning_rate: float = setting("float", 1e-3, "initial learning rate", minimum=0)
    clipvalue: float | None = setting("float", None, "clip each gradient element to ±clipvalue", minimum=0)
    weight_decay: float = setting("float", 0.004, "decoupled weight decay (adamw only)", minimum=0)
    ema_momentum: float | None = setting(
        "float", None, "validate, checkpoint and keep a moving average of the weights (e.g. 0.99 per step) "
        "instead of the last weights", minimum=0, maximum=0.9999)


@dataclass(frozen=True, kw_only=True)
class ReducerSection:
    factor: float = setting("float", 0.4, "multiply the learning rate by this on a plateau", minimum=0, maximum=1)
    patience: int = setting("int", 4, "epochs without val_loss improvement before reducing (0 = off)", minimum=0,
                            maximum=MAX_EPOCHS)


@dataclass(frozen=True, kw_only=True)
class TrainSection:
    epochs: int = setting("int", 100, "maximum number of epochs", minimum=1, maximum=MAX_EPOCHS)
    batch_size: int = setting("int", 2, "images per step", minimum=1, maximum=MAX_BATCH)
    patience: int = setting("int", 10, "early stopping patience in epochs (0 = off)", minimum=0, maximum=MAX_EPOCHS)
    reducer: ReducerSection = setting("table", None, "ReduceLROnPlateau settings", record=ReducerSection)
    cache: str = setting("str", "none", "keep decoded pairs in memory or on disk after the first epoch",
                         choices=("none", "memory", "disk"))
    jit_compile: str = setting("str", "auto", "XLA-compile the train step ('auto': Keras's choice, off on CPU; "
                               "'on' gives up bit-exact reruns)", choices=("auto", "on", "off"))
    precision: str = setting("str", "float32", "compute precision; the softmax stays float32",
                             choices=("float32", "mixed_float16", "mixed_bfloat16"))
    tensorboard: bool = setting("bool", False, "write TensorBoard logs into <output_dir>/tensorboard")
    strategy: str = setting("str", "auto", "tf.distribute strategy ('auto': mirrored over several GPUs, else one "
                            "device; 'multi_worker' reads the cluster from TF_CONFIG)",
                            choices=("auto", "one_device", "mirrored", "multi_worker"))


@dataclass(frozen=True, kw_only=True)
class AugmentSection:
    enabled: bool = setting("bool", False, "augment training pairs online (never valid/test)")
    flips: bool = setting("bool", True, "random horizontal and vertical flips")
    rotate90: bool = setting("bool", True, "random 90 degree turns (square inputs)")
    crop: bool = setting("bool", False, "train on random model-size crops of full-size images instead of resizing")
    crops_per_image: int = setting("int", 1, "windows drawn from each training image per epoch (crop mode)",
                                   minimum=1, maximum=1024)
    stain_jitter: float = setting("float", 0.05, "per-channel scale/shift strength (0 = off)", minimum=0, maximum=0.5)
    rotate: bool = setting("bool", False, "random turns by any angle (bilinear resampling; edges mirrored where needed)")
    zoom: float = setting("float", 0.0, "random scale by a factor in [1 - zoom, 1 + zoom] (0 = off)", minimum=0,
                          maximum=0.5)
    hed_jitter: float = setting("float", 0.0, "scale/shift strength of each stain's optical density, haematoxylin, "
                                "eosin, DAB (0 = off; RGB images)", minimum=0, maximum=0.5)


@dataclass(frozen=True, kw_only=True)
class InferSection:
    images: Path | None = setting("path", None, "folder of images to segment (checked when `segkit infer` runs)")
    #: filled in as <output_dir>/infer when not given
    output: Path = setting("path", None, "folder for the masks (default <output_dir>/infer)")
    overlap: float = setting("float", 0.5, "overlap of sliding windows on images larger than the model input",
                             minimum=0, maximum=0.9)
    tta: bool = setting("bool", False, "average the softmax over flipped copies (test-time augmentation)")
    batch_size: int = setting("int", 8, "images or tiles per model call", minimum=1, maximum=MAX_BATCH)


@dataclass(frozen=True, kw_only=True)
class InstancesSection(PluginSection):
    """``[instances]``: which instancer turns the softmax into nuclei, and how objects are reported."""

    name: str = setting("str", help="instancer plugin that separates the nuclei, e.g. 'watershed' or "
                        "'connected-components' (see `segkit plugins`)")
    microns_per_pixel: float | None = setting(
        "float", None, "pixel size in µm: areas and lengths in µm and µm² (not set: in pixels; take it from the "
        "scanner or the dataset's documentation, never guess it)", minimum=0.001, maximum=100)
    compress_geojson: bool = setting("bool", False, "write each image's nuclei as .geojson.gz instead of .geojson")


@dataclass(frozen=True, kw_only=True)
class SlidesSection:
    """``[slides]``: how a whole-slide image's tissue is found and cut into model-size tiles."""

    tissue: str = setting("str", "all", "what counts as tissue on the low-resolution level, by Otsu's threshold: "
                          "'saturation' (glass is grey), 'optical_density' (glass is bright) or 'all' (both must hold: "
                          "dark dust and pale stains are left out)",
                          choices=("saturation", "optical_density", "all"))
    tissue_side: int = setting("int", 1024, "long side in pixels of the level the tissue mask is computed on (the "
                               "smallest level at least this long)", minimum=64, maximum=MAX_INPUT_SIZE)
    min_tissue_area: float = setting("float", 5000.0, "tissue specks smaller than this, in µm², are dropped (without "
                                     "a pixel size: 16 pixels of the tissue level)", minimum=0)
    max_hole_area: float = setting("float", 10000.0, "holes in the tissue smaller than this, in µm², are filled "
                                   "(without a pixel size: 16 pixels of the tissue level)", minimum=0)
    overlap: float = setting("float", 0.25, "overlap of neighbouring slide tiles (a share of the tile side; more "
                             "than a nucleus keeps each one whole in the tile that owns its centre)",
                             minimum=0, maximum=0.9)


@dataclass(frozen=True, kw_only=True)
class CvSection:
    """``[cv]``: grouped K-fold cross-validation, each fold an ordinary run in ``<output_dir>/fold_k``."""

    folds: int | None = setting("int", None, "number of folds K (not set: no cross-validation; `segkit train "
                                "--folds K` sets it)", minimum=2, maximum=MAX_FOLDS)
    group_by: str = setting("str", "image", "what keeps images together in one fold: each 'image' alone, the "
                            "group the 'dataset' names (the UCSB core), a 'regex' over the stem, or a 'csv' of "
                            "stem,group", choices=("image", "dataset", "regex", "csv"))
    group_regex: str | None = setting("str", None, "regular expression searched in each image stem; its first "
                                      "group (or the whole match) is the image's group (group_by = 'regex')")
    groups_csv: Path | None = setting("path", None, "CSV file of stem,group rows, one per image (group_by = 'csv')")
    seed: int | None = setting("int", None, "seed of the fold plan (not set: [project] seed)", minimum=0,
                               maximum=2**32 - 1)
    stratify: bool = setting("bool", True, "balance each image's majority class over the folds where the groups "
                             "allow")


MODEL_KEYS = options_of(ModelSection)
OPTIMIZER_KEYS = options_of(OptimizerSection)
REDUCER_KEYS = options_of(ReducerSection)
TRAIN_KEYS = options_of(TrainSection)
AUGMENT_KEYS = options_of(AugmentSection)
INFER_KEYS = options_of(InferSection)
INSTANCES_KEYS = options_of(InstancesSection)
SLIDES_KEYS = options_of(SlidesSection)
CV_KEYS = options_of(CvSection)
PLUGIN_NAME = options_of(PluginSection)
# [loss] and [dataset] name a built-in plugin when they name none
LOSS_KEYS = (replace(PLUGIN_NAME[0], default="categorical_crossentropy"),)
DATASET_KEYS = (replace(PLUGIN_NAME[0], default="categorized-masks"),)
# keys that become a ClassTable or a tuple, not a record of their own
CLASS_KEYS = (
    Option("name", "str", help="class name"),
    Option("color", "color", help="mask colour [r, g, b]"),
)
MASK_KEYS = (
    Option("ignore_color", "color", None, "mask colour of pixels that count in no loss or metric"),
    Option("tolerance", "float", 60.0, "colour distance beyond which a mask pixel is reported", minimum=0),
)
METRICS_KEYS = (Option("names", "str_list", ["dice_coef_multiclass"], "metric plugins to compute"),)
