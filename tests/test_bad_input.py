"""Folders and project files assembled by hand, through the real CLI.

Every mistake must end in exit code 2 and one line that names the file or key and says what to do,
with no traceback (unless --debug) and nothing in the output folder overwritten. Inputs that are
merely unusual (grayscale, RGBA, 16-bit, JPEG masks, small images, non-UTF-8 names) must be
converted sensibly and train. Trainings are one epoch of the tiny 64x64 project.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import Result

from segkit.classes import IGNORE_INDEX
from segkit_process import run_segkit
from cli_results import invoke, single_error_line, snapshot
from tiny_data import blob_pair, edit_text, write_tiny_project

ROOT = Path(__file__).resolve().parents[1]
SENTINEL = "keep.txt"
SENTINEL_BYTES = b"an earlier result a user cares about\n"
FOURTH_CLASS = '\n[[classes]]\nname = "necrosis"\ncolor = [0, 0, 255]\n'


# --------------------------------------------------------------------------------------------- helpers

def assert_clean_failure(result: Result, *patterns: str) -> None:
    """Exit 2, one ``error:`` line matching every pattern (file or key, and what to do), no traceback."""
    line = single_error_line(result)
    for pattern in patterns:
        assert re.search(pattern, line), f"{pattern!r} not in {line!r}"


def png_bytes(array: np.ndarray, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def replace_file(old: Path, new_name: str, data: bytes) -> Path:
    """Swap ``old`` for a file of another name (extension) holding ``data``."""
    old.unlink()
    target = old.with_name(new_name)
    target.write_bytes(data)
    return target


def non_utf8_name(folder: Path, stem_bytes: bytes, suffix: str) -> Path:
    """A path whose name is not valid UTF-8 (Latin-1 'é'), as copied from an old Windows share."""
    name = os.fsdecode(stem_bytes + suffix.encode())
    path = folder / name
    try:
        path.write_bytes(b"")
        path.unlink()
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system does not store non-UTF-8 file names")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The tiny project with a file the user cares about already in its output folder."""
    path = write_tiny_project(tmp_path, epochs=1)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / SENTINEL).write_bytes(SENTINEL_BYTES)
    return path


def data(project: Path) -> Path:
    return project.parent / "data"


# ------------------------------------------------------------- project file and --set: before TensorFlow

PROJECT_CASES = [
    # id, old text, new text, patterns the one error line must match
    ("malformed-toml", "seed = 7", "seed = = 7",
     [r"tiny\.toml: invalid TOML: .*line 5", r"fix the syntax at that line"]),
    ("unknown-section", "[train]", "[trian]", [r"tiny\.toml: trian: unknown section \(did you mean 'train'\?\)"]),
    ("unknown-key", "batch_size = 4", "batchsize = 4",
     [r"tiny\.toml: train\.batchsize: unknown key \(did you mean 'batch_size'\?\)"]),
    ("wrong-type", "image_width = 64", 'image_width = "64"',
     [r"tiny\.toml: model\.image_width: expected an integer, got a string \('64'\)"]),
    ("table-expected", "patience = 0\n\n[train.reducer]\nfactor = 0.5\npatience = 1\n", "patience = 0\nreducer = 0.5\n",
     [r"tiny\.toml: train\.reducer: expected a table, got a number"]),
    ("unknown-model-plugin", 'name = "flexunet"', 'name = "flexunett"',
     [r"model\.name: unknown model 'flexunett' \(available: [^)]*flexunet", r"did you mean 'flexunet'\?"]),
    ("unknown-dataset-plugin", 'name = "categorized-masks"', 'name = "categorised-masks"',
     [r"dataset\.name: unknown dataset 'categorised-masks'", r"did you mean 'categorized-masks'\?"]),
    ("duplicate-class-colours", "color = [255, 0, 0]", "color = [0, 255, 0]",
     [r"classes\.2\.color: same color as classes\.1", r"each class needs its own name and colour"]),
    ("ignore-colour-is-a-class-colour", "[optimizer]", "[mask]\nignore_color = [0, 255, 0]\n\n[optimizer]",
     [r"mask\.ignore_color: same colour as classes\.1 \(benign", r"pick a colour no class uses"]),
    ("missing-image-folder", '"data/train/images"', '"data/train/imgs"',
     [r"dataset\.train\.images: folder \S+/data/train/imgs does not exist \(create it or fix the path\)"]),
    ("path-is-a-file", '"data/valid/masks"', '"tiny.toml"',
     [r"dataset\.valid\.masks: \S+/tiny\.toml is a file, not a folder", r"point it at the folder"]),
    ("unknown-callback", 'name = "epoch-change-inferencer"', 'name = "epoch-change"',
     [r"callbacks\.0\.name: unknown callback 'epoch-change'", r"did you mean 'epoch-change-inferencer'\?"]),
]


@pytest.mark.parametrize(("old", "new", "patterns"), [c[1:] for c in PROJECT_CASES], ids=[c[0] for c in PROJECT_CASES])
def test_project_file_mistakes(project: Path, old: str, new: str, patterns: list[str]) -> None:
    edit_text(project, old, new)
    before = snapshot(project.parent / "run")
    assert_clean_failure(invoke("train", project), re.escape(str(project.resolve())), *patterns)
    assert snapshot(project.parent / "run") == before


SET_CASES = [
    ("bad-value", "train.epochs=many",
     [r"train\.epochs: expected an integer, got a string \('many'\), given with --set"]),
    ("out-of-range", "train.batch_size=0", [r"train\.batch_size: must be at least 1, got 0, given with --set"]),
    ("bad-choice", "optimizer.name=sgd", [r"optimizer\.name: must be one of adam, adamw; got 'sgd', given with --set"]),
    ("unknown-key", "train.epoch=3", [r"train\.epoch: unknown key, given with --set \(did you mean 'epochs'\?\)"]),
    ("no-equals", "train.epochs", [r"--set train\.epochs: expected KEY\.PATH=VALUE \(e\.g\. --set train\.epochs=2\)"]),
    ("bad-index", "classes.7.name=x", [r"classes\.7\.name: '7' is not an index of this array \(0\.\.2\)",
                                       r"use --set section\.N\.key=VALUE with an existing N"]),
]


@pytest.mark.parametrize(("setting", "patterns"), [c[1:] for c in SET_CASES], ids=[c[0] for c in SET_CASES])
def test_set_with_a_bad_value(project: Path, setting: str, patterns: list[str]) -> None:
    before = snapshot(project.parent / "run")
    assert_clean_failure(invoke("train", project, "--set", setting), *patterns)
    assert snapshot(project.parent / "run") == before


def test_project_file_that_is_not_utf8(project: Path) -> None:
    project.write_bytes(project.read_bytes().replace(b'name = "tiny"', b'name = "tiny" # caf\xe9'))
    assert_clean_failure(invoke("train", project), r"tiny\.toml: is not UTF-8 text \(byte \d+\) \(save it as UTF-8\)")


def test_project_file_missing(tmp_path: Path) -> None:
    assert_clean_failure(invoke("eval", tmp_path / "nope.toml"),
                         r"nope\.toml: project file not found \(check the path\)")


def test_paths_are_reported_resolved(project: Path) -> None:
    """A path with ``..`` and ``.`` in it is reported as the folder it really is."""
    edit_text(project, '"data/train/images"', '"./data/../data/./train/imgs"')
    result = invoke("train", project)
    resolved = project.parent.resolve() / "data" / "train" / "imgs"
    assert_clean_failure(result, re.escape(str(resolved)) + " does not exist")
    assert "/../" not in result.output and "/./" not in result.output


# ------------------------------------------------------------------------ the output folder

def test_output_folder_is_a_file(project: Path) -> None:
    (project.parent / "taken").write_bytes(b"not a folder")
    result = invoke("train", project, "--set", f"project.output_dir={project.parent / 'taken'}")
    assert_clean_failure(result, r"taken: is a file; set project\.output_dir to a folder")
    assert (project.parent / "taken").read_bytes() == b"not a folder"


def test_output_folder_below_a_file(project: Path) -> None:
    (project.parent / "taken").write_bytes(b"not a folder")
    result = invoke("train", project, "--set", f"project.output_dir={project.parent / 'taken' / 'run'}")
    assert_clean_failure(result, r"taken: is a file, so \S+/taken/run cannot be created; set project\.output_dir")
    assert (project.parent / "taken").read_bytes() == b"not a folder"


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A folder this process cannot write in: read-only mode bits, or, for root (who ignores them), sysfs."""
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / SENTINEL).write_bytes(SENTINEL_BYTES)
    folder.chmod(0o555)
    try:
        if not os.access(folder, os.W_OK):
            yield folder
            return
        sysfs = Path("/sys/segkit-bad-input-test")
        try:
            sysfs.mkdir()
        except OSError:
            yield sysfs / "run"
            return
        sysfs.rmdir()
        pytest.skip("no folder here is unwritable for this user")
    finally:
        folder.chmod(0o755)


def test_output_folder_not_writable(project: Path, unwritable: Path) -> None:
    before = snapshot(unwritable)
    result = invoke("train", project, "--set", f"project.output_dir={unwritable}")
    assert_clean_failure(result, re.escape(str(unwritable)) + r": cannot write there \(.+\); set project\.output_dir "
                         r"to a folder you can write to")
    assert snapshot(unwritable) == before


def test_overwrite_keeps_the_earlier_run_when_the_data_is_bad(project: Path) -> None:
    """--overwrite clears the run only once the data has been checked."""
    run = project.parent / "run"
    (run / "models").mkdir()
    (run / "models" / "best_model.keras").write_bytes(b"the earlier model")
    (run / "eval").mkdir()
    (run / "eval" / "train_losses.csv").write_text("epoch,loss\n1,0.5\n")
    before = snapshot(run)
    (data(project) / "valid" / "masks" / "img_01.png").write_bytes(b"")
    result = invoke("train", project, "--overwrite")
    assert_clean_failure(result, r"valid/masks/img_01\.png: is empty \(0 bytes\); copy it again or remove it")
    assert snapshot(run) == before


# ------------------------------------------------------------------------ images and masks

def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _flip_png_pixels(path: Path) -> None:
    """Flip bits inside the compressed pixel data (the IDAT chunk); the header stays intact."""
    raw = bytearray(path.read_bytes())
    start = raw.index(b"IDAT") + 20
    for offset in range(start, start + 40, 4):
        raw[offset] ^= 0x5A
    path.write_bytes(bytes(raw))


def _corrupt_tiff(path: Path) -> None:
    image, _ = blob_pair(1)
    raw = bytearray(png_bytes(image, "TIFF"))
    raw[4:8] = b"\xff\xff\xff\x7f"  # the first directory lies far beyond the end of the file
    replace_file(path, "img_01.tif", bytes(raw))


def _corrupt_jpeg(path: Path) -> None:
    replace_file(path, "img_02.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)


def _zero_byte_mask(path: Path) -> None:
    path.write_bytes(b"")


def _grey_mask_of_other_size(path: Path) -> None:
    Image.new("RGB", (48, 64)).save(path)


def _duplicate_stem(path: Path) -> None:
    shutil.copy(path, path.with_suffix(".jpg"))


def _unpaired(path: Path) -> None:
    path.unlink()


def _empty_folder(path: Path) -> None:
    for folder in (path.parent, path.parent.parent / "masks"):
        for file in folder.iterdir():
            file.unlink()


def _not_an_image(path: Path) -> None:
    path.write_text("<html>404 Not Found</html>\n")


DATA_CASES = [
    # id, file to spoil (below data/), how, patterns
    ("corrupt-png", "train/images/img_03.png", _flip_png_pixels,
     [r"train/images/img_03\.png: cannot be read as an image \(", r"re-export it or remove it from the folder"]),
    ("truncated-png", "train/masks/img_04.png", _truncate,
     [r"train/masks/img_04\.png: cannot be read as an image", r"re-export it or remove it"]),
    ("corrupt-tiff", "train/images/img_01.png", _corrupt_tiff,
     [r"train/images/img_01\.tif: cannot be read as an image \(not a format Pillow", r"re-export it or remove it"]),
    ("corrupt-jpeg", "valid/images/img_02.png", _corrupt_jpeg,
     [r"valid/images/img_02\.jpg: cannot be read as an image \(not a format Pillow", r"re-export it or remove it"]),
    ("zero-byte-file", "train/masks/img_05.png", _zero_byte_mask,
     [r"train/masks/img_05\.png: is empty \(0 bytes\); copy it again or remove it from the folder"]),
    ("html-saved-as-png", "valid/masks/img_00.png", _not_an_image,
     [r"valid/masks/img_00\.png: cannot be read as an image \(not a format Pillow recognises, or a damaged header\)",
      r"re-export it or remove it from the folder"]),
    ("mask-of-another-size", "train/masks/img_06.png", _grey_mask_of_other_size,
     [r"train/masks/img_06\.png: mask is 48x64 but its image img_06\.png is 64x64; "
      r"masks must have their image's size"]),
    ("duplicate-stems", "train/images/img_00.png", _duplicate_stem,
     [r"train/images: 'img_00\.jpg' and 'img_00\.png' share the stem 'img_00'; keep one of them"]),
    ("unpaired-image", "valid/masks/img_03.png", _unpaired,
     [r"images without a mask in \S+/valid/masks: img_03\.png", r"rename or remove these"]),
    ("empty-image-folder", "train/images/img_00.png", _empty_folder,
     [r"train/images: no images found \(looked for \.png \.jpg"]),
]


@pytest.mark.parametrize(("relative", "spoil", "patterns"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_bad_files_are_named_before_training(project: Path, relative: str, spoil: Callable[[Path], None],
                                             patterns: list[str]) -> None:
    """Caught by the header check before training starts: the output folder stays as it was."""
    spoil(data(project) / relative)
    before = snapshot(project.parent / "run")
    result = invoke("train", project)
    assert_clean_failure(result, *patterns)
    assert "training tiny" not in result.output  # failed before training started
    assert snapshot(project.parent / "run") == before


def test_non_utf8_file_name_is_shown_escaped(project: Path) -> None:
    images = data(project) / "train" / "images"
    (images / "img_02.png").rename(non_utf8_name(images, b"caf\xe9", ".png"))
    assert_clean_failure(invoke("train", project), r"images without a mask in \S+: caf\\xe9\.png",
                         r"masks without an image in \S+: img_02\.png", r"rename or remove these")


def test_stats_reports_non_utf8_and_broken_files(tmp_path: Path) -> None:
    """``segkit stats`` lists what it cannot use (escaped names, damaged files) and still draws its charts."""
    images, masks = tmp_path / "set" / "images", tmp_path / "set" / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for stem_bytes, seed in ((b"caf\xe9", 1), (b"b\xe9b\xe9", 2)):
        image, mask = blob_pair(seed)
        Image.fromarray(image).save(non_utf8_name(images, stem_bytes, ".png"))
        Image.fromarray(mask).save(non_utf8_name(masks, stem_bytes, ".png"))
    Image.fromarray(blob_pair(3)[0]).save(non_utf8_name(images, b"lonely\xe9", ".png"))
    (images / "half.png").write_bytes(png_bytes(blob_pair(4)[0])[:300])
    (masks / "half.png").write_bytes(png_bytes(blob_pair(4)[1]))
    report = tmp_path / "stats.json"
    result = invoke("stats", tmp_path / "set", "--json", report, "--plots", tmp_path / "plots")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "error" not in result.output, result.output
    assert "lonely\\xe9.png" in result.output and "half.png" in result.output
    split = json.loads(report.read_text(encoding="utf-8"))["splits"][0]
    assert split["images_without_mask"] == ["lonely\\xe9.png"]
    assert [p["file"] for p in split["problems"]] == ["images/half.png"]
    assert (tmp_path / "plots" / "samples.png").stat().st_size > 1000


def test_truncated_jpeg_found_inside_tf_data(project: Path) -> None:
    """A JPEG whose header is intact passes the header check and fails while tf.data decodes it:
    the one-line DataError, not TensorFlow's UnknownError, is what the user sees."""
    image, _ = blob_pair(5)
    raw = png_bytes(image, "JPEG", quality=95)
    replace_file(data(project) / "train" / "images" / "img_05.png", "img_05.jpg", raw[: len(raw) // 2])
    result = invoke("train", project)
    assert_clean_failure(result, r"train/images/img_05\.jpg: cannot be read as an image \(OSError: image file is "
                         r"truncated", r"re-export it or remove it from the folder")
    assert "training tiny" in result.output  # this one did reach TensorFlow
    assert (project.parent / "run" / SENTINEL).read_bytes() == SENTINEL_BYTES


def test_debug_shows_the_traceback(project: Path) -> None:
    edit_text(project, "batch_size = 4", "batchsize = 4")
    plain = run_segkit(["train", project], timeout=120, stderr_apart=True)
    debug = run_segkit(["train", project, "--debug"], timeout=120, stderr_apart=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr, plain.stderr
    assert "train.batchsize: unknown key" in plain.stderr
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "segkit.errors.ProjectError" in debug.stderr and "train.batchsize: unknown key" in debug.stderr


# ---------------------------------------------------------- unusual but valid input: converted and trained

@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """One training on a train split with a grayscale, an RGBA and a 16-bit image, a small pair, a JPEG
    mask with colour noise and a block of a colour no class has, and a pair with non-UTF-8 names."""
    project = write_tiny_project(tmp_path_factory.mktemp("messy"), epochs=1)
    images, masks = data(project) / "train" / "images", data(project) / "train" / "masks"
    Image.open(images / "img_00.png").convert("L").save(images / "img_00.png")
    rgba = Image.open(images / "img_01.png").convert("RGBA")
    alpha = np.full((64, 64), 255, np.uint8)
    alpha[:16, :16] = 0
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(images / "img_01.png")
    grey16 = np.asarray(Image.open(images / "img_02.png").convert("L")).astype(np.uint16) * 16  # 0..4080
    Image.fromarray(grey16).save(images / "img_02.png")
    image, mask = blob_pair(3, 48)
    Image.fromarray(image[:, :40]).save(images / "img_03.png")
    Image.fromarray(mask[:, :40]).save(masks / "img_03.png")
    noisy = np.asarray(Image.open(masks / "img_04.png")).copy()
    noisy[:8, :8] = (0, 0, 255)  # far from black, green and red
    replace_file(masks / "img_04.png", "img_04.jpg", png_bytes(noisy, "JPEG", quality=80))
    (images / "img_05.png").rename(non_utf8_name(images, b"\xe9t\xe9", ".png"))
    (masks / "img_05.png").rename(non_utf8_name(masks, b"\xe9t\xe9", ".png"))
    return project, invoke("train", project)


def test_messy_but_valid_folder_trains_with_a_one_line_note(messy: tuple[Path, Result]) -> None:
    _, result = messy
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "error:" not in result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1, result.output
    assert re.fullmatch(r"note: \d+ mask pixels in 1 file\(s\) lie farther than 60 from every class colour and "
                        r"were given the nearest class \(check the \[\[classes\]\] colours or \[mask\] "
                        r"tolerance\)", notes[0])


def test_grayscale_image_becomes_three_equal_channels(messy: tuple[Path, Result]) -> None:
    from segkit.data.images import read_image

    project, result = messy
    assert result.exit_code == 0, result.output
    array = read_image(data(project) / "train" / "images" / "img_00.png")
    assert array.shape == (64, 64, 3) and array.dtype == np.uint8
    assert (array[:, :, 0] == array[:, :, 1]).all() and (array[:, :, 1] == array[:, :, 2]).all()


def test_rgba_image_is_flattened_onto_white(messy: tuple[Path, Result]) -> None:
    from segkit.data.images import read_image

    project, result = messy
    assert result.exit_code == 0, result.output
    array = read_image(data(project) / "train" / "images" / "img_01.png")
    assert array.shape == (64, 64, 3)
    assert (array[:16, :16] == 255).all()  # transparent: white, as a viewer shows it
    assert array[32:, 32:].mean() < 250  # opaque: the tissue itself


def test_16bit_image_is_scaled_to_8bit(messy: tuple[Path, Result]) -> None:
    from segkit.data.images import read_image

    project, result = messy
    assert result.exit_code == 0, result.output
    path = data(project) / "train" / "images" / "img_02.png"
    assert Image.open(path).mode.startswith("I")
    array = read_image(path)
    source = np.asarray(Image.open(path)).astype(np.float64)
    assert array.shape == (64, 64, 3) and array.max() == 255
    # scaled by the image's own range, order kept
    expected = np.clip(source / source.max() * 255 + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(array[:, :, 0], expected)


def test_jpeg_mask_decodes_to_class_indices(messy: tuple[Path, Result]) -> None:
    from segkit.data.images import read_mask
    from segkit.project import load_project

    project, result = messy
    assert result.exit_code == 0, result.output
    indices, far = read_mask(data(project) / "train" / "masks" / "img_04.jpg", load_project(project).classes)
    assert set(np.unique(indices)) <= {0, 1, 2}
    assert far > 0  # the blue block


# ---------------------------------------------------------------- images smaller than the model input

def _shrink_all(project: Path, width: int, height: int) -> None:
    for split in ("train", "valid", "test"):
        for folder in ("images", "masks"):
            for path in (data(project) / split / folder).iterdir():
                Image.open(path).crop((0, 0, width, height)).save(path)


def test_small_images_are_padded_in_crop_mode(tmp_path: Path) -> None:
    """Decision: in crop mode a 40x48 image under a 64x64 window is padded, not stretched: its pixels
    keep their scale (the point of crop mode) and the padding is IGNORE_INDEX in the mask, so it
    counts in no loss or metric. In resize mode (the default) it is resized like any other image."""
    from segkit.data.folders import FolderDataset, SplitFolders
    from segkit.data.pipeline import load_tiles
    from segkit.project import load_project

    project = write_tiny_project(tmp_path, epochs=1)
    _shrink_all(project, 40, 48)
    crop = ["--set", "augment.enabled=true", "--set", "augment.crop=true"]
    trained = invoke("train", project, *crop)
    assert trained.exit_code == 0, trained.output
    evaluated = invoke("eval", project, *crop)
    assert evaluated.exit_code == 0, evaluated.output
    loaded = load_project(project, crop[1::2])
    source = FolderDataset({"test": SplitFolders(data(project) / "test" / "images", data(project) / "test" / "masks")},
                           loaded.classes)
    images, masks = load_tiles(source, source.pairs("test")[0], 64, 64)
    assert images.shape == (1, 64, 64, 3) and masks.shape == (1, 64, 64)
    assert (masks[0, 48:, :] == IGNORE_INDEX).all() and (masks[0, :, 40:] == IGNORE_INDEX).all()
    assert (masks[0, :48, :40] != IGNORE_INDEX).all()


# --------------------------------------------------------------------- checkpoints at eval and infer

@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny project trained for one epoch, shared by the checkpoint cases."""
    project = write_tiny_project(tmp_path_factory.mktemp("trained"), epochs=1)
    before = {p for p in project.parent.rglob("*")}
    result = invoke("train", project)
    assert result.exit_code == 0, result.output
    created = {p for p in project.parent.rglob("*")} - before
    run = project.parent / "run"
    # outputs go only under the configured output folder
    assert created and all(p == run or run in p.parents for p in created), sorted(created)
    (run / SENTINEL).write_bytes(SENTINEL_BYTES)
    return project


def _four_classes(project: Path) -> Path:
    four = project.with_name("four.toml")
    four.write_text(project.read_text(encoding="utf-8").replace("\n[optimizer]", FOURTH_CLASS + "\n[optimizer]"),
                    encoding="utf-8")
    return four


CHECKPOINT_CASES = [
    ("eval-other-class-count", "eval", _four_classes, [],
     [(r"best_model\.keras: was trained with classes = \[background \[0, 0, 0\], benign \[0, 255, 0\], malignant "
       r"\[255, 0, 0\]\] \(project: \[.*, necrosis \[0, 0, 255\]\]\); put the project back or train again "
       r"with --overwrite$")]),
    ("infer-other-class-count", "infer", _four_classes, [], [r"was trained with classes = .*necrosis"]),
    ("eval-other-input-size", "eval", None, ["model.image_width=32"],
     [(r"was trained with model\.image_width = 64 \(project: 32\); .* \(or pass --set model\.image_width=64 as in "
       r"training\)")]),
    ("eval-other-architecture", "eval", None, ["model.num_layers=2"],
     [r"best_model\.keras: was trained with model\.num_layers = 3 \(project: 2\); put the project back or train "
      r"again with --overwrite"]),
    ("infer-other-architecture", "infer", None, ["model.base_filters=8"],
     [r"was trained with model\.base_filters = 4 \(project: 8\)"]),
]


@pytest.mark.parametrize(("command", "variant", "settings", "patterns"), [c[1:] for c in CHECKPOINT_CASES],
                         ids=[c[0] for c in CHECKPOINT_CASES])
def test_checkpoint_that_does_not_fit_the_project(trained: Path, command: str, variant: Callable[[Path], Path] | None,
                                                  settings: list[str], patterns: list[str]) -> None:
    run = trained.parent / "run"
    before = snapshot(run)
    project = variant(trained) if variant else trained
    args = [arg for setting in settings for arg in ("--set", setting)]
    assert_clean_failure(invoke(command, project, *args), *patterns)
    assert snapshot(run) == before


def test_damaged_checkpoint(trained: Path, tmp_path: Path) -> None:
    other = tmp_path / "copied-run"
    (other / "models").mkdir(parents=True)
    model = (trained.parent / "run" / "models" / "best_model.keras").read_bytes()
    (other / "models" / "best_model.keras").write_bytes(model[: len(model) // 3])
    before = snapshot(other)
    result = invoke("eval", trained, "--set", f"project.output_dir={other}")
    assert_clean_failure(result, r"copied-run/models/best_model\.keras: is not a complete \.keras file \(damaged or "
                         r"half-copied\); copy it again or train again with --overwrite")
    assert snapshot(other) == before


def test_eval_without_a_trained_model(project: Path) -> None:
    assert_clean_failure(invoke("eval", project), r"run/models/best_model\.keras: no trained model yet; run "
                         r"`segkit train \S+tiny\.toml` first")


def test_corrupt_test_image_found_inside_tf_data_at_eval(trained: Path, tmp_path: Path) -> None:
    test = tmp_path / "test"
    shutil.copytree(data(trained) / "test", test)
    image, _ = blob_pair(201)
    raw = png_bytes(image, "JPEG", quality=95)
    replace_file(test / "images" / "img_01.png", "img_01.jpg", raw[: len(raw) // 2])
    run = trained.parent / "run"
    before = snapshot(run)
    result = invoke("eval", trained, "--set", f"dataset.test.images={test / 'images'}",
                    "--set", f"dataset.test.masks={test / 'masks'}")
    assert_clean_failure(result, r"test/images/img_01\.jpg: cannot be read as an image", r"re-export it or remove it")
    assert snapshot(run) == before


def test_infer_folder_missing(trained: Path) -> None:
    run = trained.parent / "run"
    before = snapshot(run)
    assert_clean_failure(invoke("infer", trained, "--set", "infer.images=no/such/folder"),
                         r"tiny\.toml: infer\.images: folder \S+/no/such/folder does not exist",
                         r"point it at the folder of images to segment")
    assert snapshot(run) == before


def test_infer_folder_with_a_broken_image(trained: Path, tmp_path: Path) -> None:
    folder = tmp_path / "to-segment"
    shutil.copytree(data(trained) / "infer", folder)
    _truncate(folder / "odd_1.png")
    run = trained.parent / "run"
    before = snapshot(run)
    result = invoke("infer", trained, "--set", f"infer.images={folder}")
    assert_clean_failure(result, r"to-segment/odd_1\.png: cannot be read as an image", r"re-export it or remove it")
    assert snapshot(run) == before


# ---------------------------------------------------------------------------------------- safety

@pytest.mark.parametrize("name", ["evil", "evil.py", "./evil.py", "evil:build", "os:system"])
def test_plugin_names_are_never_imported_by_path(project: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A model name is looked up among installed entry points only, never imported or run."""
    marker = project.parent / "evil-ran"
    (project.parent / "evil.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
                                            "def build(request):\n    return None\n")
    monkeypatch.chdir(project.parent)
    monkeypatch.syspath_prepend(str(project.parent))
    edit_text(project, 'name = "flexunet"', f'name = "{name}"')
    assert_clean_failure(invoke("train", project), rf"model\.name: unknown model '{re.escape(name)}' \(available: ")
    assert not marker.exists()
    assert "evil" not in sys.modules


def test_keras_files_load_in_safe_mode_only(trained: Path, tmp_path: Path) -> None:
    """A .keras file with a Python lambda in it is refused, and the lambda never runs."""
    import keras

    marker = tmp_path / "lambda-ran"
    code = f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]"
    inputs = keras.Input((64, 64, 3))
    model = keras.Model(inputs, keras.layers.Lambda(eval(code))(inputs))
    other = tmp_path / "foreign-run"
    (other / "models").mkdir(parents=True)
    model.save(other / "models" / "best_model.keras")
    marker.unlink(missing_ok=True)  # the lambda ran once, when the model was built
    result = invoke("eval", trained, "--set", f"project.output_dir={other}")
    assert_clean_failure(result, r"foreign-run/models/best_model\.keras: cannot be loaded \(ValueError: .*Lambda")
    assert not marker.exists()


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and (getattr(node.func, "attr", None) == name or getattr(node.func, "id", None) == name)]


def test_no_code_path_enables_unsafe_loading_or_imports_by_path() -> None:
    """Every model load in segkit and its plugins passes safe_mode=True, nothing switches unsafe
    deserialization on, and nothing imports or runs code from a file path."""
    for path in [*ROOT.joinpath("segkit").rglob("*.py"), *ROOT.joinpath("plugins").rglob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in _calls(tree, "load_model"):
            safe = [k.value for k in call.keywords if k.arg == "safe_mode"]
            assert len(safe) == 1 and isinstance(safe[0], ast.Constant) and safe[0].value is True, \
                f"{path}:{call.lineno}: load_model without safe_mode=True"
        for banned in ("enable_unsafe_deserialization", "spec_from_file_location", "exec", "eval", "run_path",
                       "import_module", "__import__"):
            assert not _calls(tree, banned), f"{path}: calls {banned}"
