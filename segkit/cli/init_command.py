"""``segkit init NAME``: a project folder for a new dataset, a commented TOML and the empty layout."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from segkit.data.images import image_size, is_image_name
from segkit.engine.infer_plan import SQUASH_FACTOR
from segkit.errors import DataError, ProjectError
from segkit.plugins import get_registry
from segkit.project import load_project
from segkit.report.console import console
from segkit.sections import MODEL_KEYS
from segkit.toml_io import write_atomic

Color = tuple[int, int, int]
SPLITS = ("train", "valid", "test")
DEFAULT_CLASSES = ("background:0,0,0", "foreground:255,0,0")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: The largest --size when [model] declares no maximum: a 4096 x 4096 input already needs several
#: GiB of activations per image in a U-Net; larger images are trained on tiles (crop mode).
INIT_MAX_SIZE = 4096
_CLASS = re.compile(r"^(?P<name>[^:]+):(?P<r>\d{1,3}),(?P<g>\d{1,3}),(?P<b>\d{1,3})$")

HEADER = """\
# segkit project "{name}", written by `segkit init`. Relative paths resolve against this file's folder.
#
# 1. Put image/mask pairs into data/<split>/images and data/<split>/masks, one mask per image with
#    the same file stem; masks are RGB images painted in the class colours below.
# 2. segkit stats project.toml      counts, sizes and class pixels, before any training
# 3. segkit train project.toml      then: segkit eval project.toml, segkit infer project.toml
#
# `segkit plugins` lists the models, losses, metrics and callbacks installed, with their keys.

[project]
name = {name_value}
# output_dir = "runs/{name}"   # the default: runs/<name> beside this file
seed = 42                          # weights, shuffling and augmentation all follow it

[model]
name = "flexunet"
# training resizes every pair to this size (or crops it: [augment] crop = true)
image_width = {size}
image_height = {size}
image_channels = 3                 # 1 reads images as grayscale
# FlexUNet's own keys; width and height must divide by 2**(num_layers - 1) = {divisor}
base_filters = 16
base_kernels = [7, 7]              # first kernel, shrinking by 2 per level down to 3
num_layers = {layers}
dropout_rate = 0.04
normalization = false

# One table per class in index order, background first. Mask pixels take the nearest class colour.
"""

BODY = """
[mask]
# ignore_color = [255, 255, 255]   # pixels of this colour count in no loss or metric
tolerance = 60.0                   # mask colours farther than this from every class are reported

[optimizer]
name = "adam"                      # or "adamw" (then weight_decay applies)
learning_rate = 0.001

[loss]
name = "categorical_crossentropy"

[metrics]
# per-class Dice and IoU and the mean foreground Dice are always computed beside these
names = ["dice_coef_multiclass"]

[dataset]
name = "categorized-masks"
train = { images = "data/train/images", masks = "data/train/masks" }
valid = { images = "data/valid/images", masks = "data/valid/masks" }
test = { images = "data/test/images", masks = "data/test/masks" }

[train]
epochs = 100
batch_size = 2
patience = 10                      # stop after this many epochs without a better val_loss (0 = off)
tensorboard = false                # true writes TensorBoard logs into <output_dir>/tensorboard

[train.reducer]
factor = 0.4                       # learning rate x factor after `patience` epochs on a plateau
patience = 4

[augment]
enabled = false                    # flips, 90 degree turns and stain jitter on training pairs
crop = {crop}                       # true: train on model-size crops and segment at full resolution
                                   # (for images much larger than the model input); false: resize

# After each epoch, segment a few validation images into <output_dir>/epoch_change_infer.
[[callbacks]]
name = "epoch-change-inferencer"
images = "data/valid/images"
count = 6

[infer]
images = "data/infer"              # `segkit infer` writes a mask per image into <output_dir>/infer
"""


def parse_class(spec: str) -> tuple[str, Color]:
    """``tumour:255,0,0`` -> ``("tumour", (255, 0, 0))``; anything else is a one-line error."""
    match = _CLASS.match(spec.strip())
    color = tuple(int(match[c]) for c in "rgb") if match else ()
    if not match or not match["name"].strip() or any(c > 255 for c in color):
        raise ProjectError("segkit init", f"--classes {spec}", "expected NAME:R,G,B with channels 0..255",
                           "e.g. --classes background:0,0,0 --classes tumour:255,0,0")
    return match["name"].strip(), color  # type: ignore[return-value]


def size_limit() -> tuple[int, str]:
    """The largest ``--size`` and where it comes from: ``[model]``'s declared maximum, else ``INIT_MAX_SIZE``."""
    declared = [o.maximum for o in MODEL_KEYS if o.name in ("image_width", "image_height") and o.maximum]
    if declared:
        return int(min(declared)), "the most [model] image_width and image_height accept"
    return INIT_MAX_SIZE, "the largest model input segkit init writes (one such image's activations take GiBs)"


def flexunet_depth(size: int) -> int:
    """Levels (at most 6, the default) such that ``size`` divides by ``2**(levels - 1)``."""
    if size < 32 or size % 16:
        raise ProjectError("segkit init", "--size", f"{size} must be a multiple of 16, at least 32",
                           "e.g. 128, 256 or 512")
    limit, why = size_limit()
    if size > limit:
        raise ProjectError("segkit init", "--size", f"{size} is more than {limit} pixels a side, {why}",
                           "train on tiles of large images instead: e.g. --size 512, then [augment] crop = true")
    levels = 1
    while levels < 6 and size % 2**levels == 0:
        levels += 1
    return levels


def render(name: str, classes: list[tuple[str, Color]], size: int, crop: bool = False) -> str:
    layers = flexunet_depth(size)
    text = HEADER.format(name=name, name_value=json.dumps(name), size=size, layers=layers, divisor=2 ** (layers - 1))
    for class_name, color in classes:
        rgb = ", ".join(map(str, color))
        text += f"[[classes]]\nname = {json.dumps(class_name, ensure_ascii=False)}\ncolor = [{rgb}]\n\n"
    return text.rstrip("\n") + "\n" + BODY.replace("{crop}", "true " if crop else "false")


def make_layout(folder: Path) -> list[Path]:
    folders = [folder / "data" / split / kind for split in SPLITS for kind in ("images", "masks")]
    folders.append(folder / "data" / "infer")
    for path in folders:
        path.mkdir(parents=True, exist_ok=True)
    return folders


def check_loads(project: Path, text: str) -> None:
    """Load ``text`` as the project it will be, in a scratch folder, so init never writes one that fails.

    The scratch copy has the same data layout (validation requires the folders); its errors are
    reported against ``project``, the file the user asked for.
    """
    with tempfile.TemporaryDirectory(prefix="segkit-init-") as scratch:
        trial = Path(scratch) / project.parent.name / project.name
        make_layout(trial.parent)
        trial.write_text(text, encoding="utf-8")
        try:
            load_project(trial, [], get_registry())
        except ProjectError as exc:
            raise ProjectError(str(project), exc.key, exc.problem, exc.hint) from None


def largest_image(folder: Path) -> tuple[Path, tuple[int, int]] | None:
    """The readable image with the longest side already in the project's split folders, if any."""
    found: list[tuple[Path, tuple[int, int]]] = []
    for split in SPLITS:
        images = folder / "data" / split / "images"
        for path in sorted(p for p in images.iterdir() if p.is_file() and is_image_name(p)) if images.is_dir() else []:
            try:
                found.append((path, image_size(path)))
            except DataError:
                continue  # a damaged file is for `segkit stats` and train to report
    return max(found, key=lambda item: max(item[1]), default=None)


def crop_note(largest: tuple[Path, tuple[int, int]] | None, size: int) -> str | None:
    """Why crop mode was chosen: the data's images are more than twice the model input on a side."""
    if largest is None or max(largest[1]) <= SQUASH_FACTOR * size:
        return None
    (width, height) = largest[1]
    return (f"the images are up to {width}x{height}, more than {SQUASH_FACTOR}x --size {size}: wrote [augment] crop = "
            f"true (train on {size}-px crops, segment at full resolution) instead of squashing them")


def _check_classes(classes: list[tuple[str, Color]]) -> None:
    if len(classes) < 2:
        raise ProjectError("segkit init", "--classes",
                           f"needs at least 2 classes (background first), got {len(classes)}")


def init(
    name: Annotated[str, typer.Argument(help="project name, also the folder created", show_default=False)],
    directory: Annotated[Path, typer.Option("--dir", help="where to create the project folder")] = Path("."),
    classes: Annotated[Optional[list[str]], typer.Option(
        "--classes", help="NAME:R,G,B mask colour of one class, background first (repeatable)",
        show_default=False)] = None,
    size: Annotated[int, typer.Option("--size", help="model input width and height in pixels")] = 256,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing project.toml")] = False,
) -> None:
    """Scaffold a project for a new dataset: a commented project.toml and data/{train,valid,test}/{images,masks}."""
    if not _NAME.match(name):
        raise ProjectError("segkit init", "NAME", f"'{name}' is not a usable folder name",
                           "letters, digits, '.', '_' and '-', starting with a letter or digit")
    table = [parse_class(spec) for spec in (classes or DEFAULT_CLASSES)]
    _check_classes(table)
    folder = directory / name
    project = folder / "project.toml"
    if project.exists() and not force:
        raise ProjectError(str(project), "", "already exists",
                           "pass --force to overwrite it; the data folders are kept")
    note = crop_note(largest_image(folder), size)
    text = render(name, table, size, crop=note is not None)
    check_loads(project, text)
    make_layout(folder)
    write_atomic(project, text)
    console.print(f"created {project}", markup=False, soft_wrap=True)
    if note:
        console.print(f"note: {note}", markup=False, soft_wrap=True)
    console.print(f"put pairs into {folder / 'data'}/<split>/images and masks, then: segkit train {project}",
                  markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
