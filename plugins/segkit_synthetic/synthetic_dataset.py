"""The ``synthetic-he`` dataset: tiles written once into ``<output_dir>/synthetic-he`` and re-used,
each with the exact instance ids of its nuclei (an :class:`segkit.plugin.InstanceSource`).

The cache is regenerated whenever a key (sizes, counts, mix, seed, class colours) changes, so
what a person opens in that folder is always what the model was trained on.
"""

from __future__ import annotations

from segkit.plugin import DatasetRequest, FolderDataset, Option, SplitFolders
from segkit_synthetic.he_tiles import TileSettings
from segkit_synthetic.tile_folders import dataset_is_current, write_dataset

CACHE_FOLDER = "synthetic-he"
SPLITS = ("train", "valid", "test")

SYNTHETIC_OPTIONS = (
    Option("tile_size", "int", 128, "tile height and width in pixels", minimum=32, maximum=2048),
    Option("train_count", "int", 320, "tiles in the train split", minimum=1, maximum=100_000),
    Option("valid_count", "int", 48, "tiles in the valid split", minimum=1, maximum=100_000),
    Option("test_count", "int", 64, "tiles in the test split", minimum=1, maximum=100_000),
    Option("malignant_fraction", "float", 0.5, "share of single-class tiles that are malignant", minimum=0, maximum=1),
    Option("mixed_fraction", "float", 0.3, "share of tiles with a benign and a malignant region", minimum=0, maximum=1),
    Option("nucleus_radius", "float", 4.0, "mean benign nucleus radius in pixels (malignant ~2x)", minimum=2,
           maximum=64),
    Option("seed", "int", 0, "seed of the generator (independent of [project] seed)", minimum=0,
           maximum=2**32 - 1),
)


def _settings(request: DatasetRequest) -> TileSettings:
    options = request.options
    if request.classes.num_classes != 3:
        raise ValueError("synthetic-he draws exactly 3 classes (background, benign, malignant); "
                         f"the project has {request.classes.num_classes}")
    return TileSettings.from_class_table(
        request.classes, size=options["tile_size"], malignant_fraction=options["malignant_fraction"],
        mixed_fraction=options["mixed_fraction"], nucleus_radius=options["nucleus_radius"],
    )


def open_synthetic_he(request: DatasetRequest) -> FolderDataset:
    """The cached tiles (generated first when missing or stale); bad keys raise ValueError."""
    settings = _settings(request)
    counts = {split: request.options[f"{split}_count"] for split in SPLITS}
    root = request.output_dir / CACHE_FOLDER
    if not dataset_is_current(root, counts, request.options["seed"], settings):
        write_dataset(root, counts=counts, seed=request.options["seed"], settings=settings)
    splits = {split: SplitFolders(root / split / "images", root / split / "masks", root / split / "instances")
              for split in SPLITS}
    return FolderDataset(splits, request.classes, request.image_channels)
