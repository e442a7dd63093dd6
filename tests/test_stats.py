"""Dataset statistics on a hand-made dataset with exactly known counts, and on the shared bcc-mini."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from segkit.classes import ClassInfo, ClassTable
from segkit.stats import DatasetStats, SplitFolders, collect_stats, render, write_charts

BCC_MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bcc-mini"

BLACK, GREEN, RED, WHITE, FAR_BLUE = (0, 0, 0), (0, 255, 0), (255, 0, 0), (255, 255, 255), (0, 0, 200)
TABLE = ClassTable(
    (ClassInfo("background", BLACK), ClassInfo("benign", GREEN), ClassInfo("malignant", RED)),
    ignore_color=WHITE,
    tolerance=60.0,
)


def _save(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array.astype(np.uint8))
    (image.convert(mode) if mode else image).save(path)


def _noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _rgb_mask(width: int, height: int, runs: list[tuple[tuple[int, int, int], int]]) -> np.ndarray:
    """Mask filled row-major with ``count`` pixels of each colour in turn, the rest black."""
    flat = np.zeros((width * height, 3), dtype=np.uint8)
    start = 0
    for color, count in runs:
        flat[start : start + count] = color
        start += count
    return flat.reshape(height, width, 3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DatasetStats]:
    """train: a (RGB, 8x6), b (RGBA, 8x6), c (L, 10x4, no mask); val: d (10x6, index mask), broken, mask e."""
    root = tmp_path_factory.mktemp("hand")
    train, val = root / "train", root / "val"
    _save(train / "images" / "a.png", _noise((6, 8, 3), 1))
    _save(train / "masks" / "a.png", _rgb_mask(8, 6, [(GREEN, 8)]))
    _save(train / "images" / "b.png", _noise((6, 8, 4), 2), "RGBA")
    _save(train / "masks" / "b.png", _rgb_mask(8, 6, [(RED, 6), ((0, 250, 0), 1), (WHITE, 4), (FAR_BLUE, 2)]))
    _save(train / "images" / "c.png", _noise((4, 10), 3))
    _save(val / "images" / "d.png", _noise((6, 10, 3), 4))
    index_mask = np.zeros((6, 10), dtype=np.uint8)
    index_mask[:1, :] = 2  # 10 malignant pixels, stored as class indices
    _save(val / "masks" / "d.png", index_mask)
    _save(val / "masks" / "e.png", np.zeros((4, 4), dtype=np.uint8))
    (val / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    splits = {name: SplitFolders(root / name / "images", root / name / "masks") for name in ("train", "val")}
    return root, collect_stats(splits, TABLE, workers=1)


def test_files_pairing_and_unpaired_names(dataset: tuple[Path, DatasetStats]) -> None:
    train, val = dataset[1].splits
    assert (train.name, train.images, train.masks, train.pairs) == ("train", 3, 2, 2)
    assert (train.images_without_mask, train.masks_without_image) == (("c.png",), ())
    assert (val.name, val.images, val.masks, val.pairs) == ("val", 2, 2, 1)
    assert (val.images_without_mask, val.masks_without_image) == (("broken.png",), ("e.png",))


def test_sizes_and_modes_tallies(dataset: tuple[Path, DatasetStats]) -> None:
    train, val = dataset[1].splits
    assert train.image_sizes == (((8, 6), 2), ((10, 4), 1))
    assert train.image_modes == (("L", 1), ("RGB", 1), ("RGBA", 1))
    assert train.mask_sizes == (((8, 6), 2),)
    assert val.image_sizes == (((10, 6), 1),)  # broken.png is a problem, not a size
    assert val.image_modes == (("RGB", 1),)
    assert val.mask_sizes == (((4, 4), 1), ((10, 6), 1))


def test_class_pixels_fractions_and_images_containing(dataset: tuple[Path, DatasetStats]) -> None:
    train, val = dataset[1].splits
    # a: 40 black + 8 green. b: 35 black + 2 far blue (nearest: black) + 6 red + 1 near-green + 4 ignored.
    assert [(c.name, c.pixels, c.images) for c in train.classes] == [
        ("background", 77, 2),
        ("benign", 9, 2),
        ("malignant", 6, 1),
    ]
    assert [c.fraction for c in train.classes] == [77 / 92, 9 / 92, 6 / 92]
    assert (train.labelled_pixels, train.ignored_pixels) == (92, 4)
    # d: 50 background + 10 malignant as indices; e (a mask without image still counts): 16 background.
    assert [(c.pixels, c.images) for c in val.classes] == [(66, 2), (0, 0), (10, 1)]
    assert [c.fraction for c in val.classes] == [66 / 76, 0.0, 10 / 76]
    assert (val.labelled_pixels, val.ignored_pixels) == (76, 0)


def test_far_colors_and_problems(dataset: tuple[Path, DatasetStats]) -> None:
    train, val = dataset[1].splits
    assert (train.far_pixels, train.far_colors) == (2, ((FAR_BLUE, 2),))
    assert (val.far_pixels, val.far_colors) == (0, ())
    assert train.problems == ()
    assert [p.file for p in val.problems] == ["images/broken.png"]
    assert val.problems[0].reason.startswith("cannot be read as an image")
    assert "\n" not in val.problems[0].reason


def test_top_far_colors_are_the_five_most_frequent(tmp_path: Path) -> None:
    runs = [((0, 0, 100 + 10 * i), i + 1) for i in range(7)]  # 7 far blues with 1..7 pixels each
    _save(tmp_path / "images" / "m.png", _noise((6, 8, 3), 5))
    _save(tmp_path / "masks" / "m.png", _rgb_mask(8, 6, runs))
    folders = SplitFolders(tmp_path / "images", tmp_path / "masks")
    (split,) = collect_stats({"s": folders}, TABLE, workers=1).splits
    assert split.far_pixels == 28
    assert split.far_colors == tuple(((0, 0, 100 + 10 * i), i + 1) for i in (6, 5, 4, 3, 2))


def test_size_mismatch_and_missing_folder_are_problems(tmp_path: Path) -> None:
    _save(tmp_path / "images" / "x.png", _noise((6, 8, 3), 6))
    _save(tmp_path / "masks" / "x.png", np.zeros((5, 8), dtype=np.uint8))
    splits = {
        "s": SplitFolders(tmp_path / "images", tmp_path / "masks"),
        "t": SplitFolders(tmp_path / "images", tmp_path / "absent"),
    }
    first, second = collect_stats(splits, TABLE, workers=1).splits
    mismatch = ("images/x.png", "image is 8x6 but its mask is 8x5")
    assert [(p.file, p.reason) for p in first.problems] == [mismatch]
    assert second.masks == 0 and second.images_without_mask == ("x.png",)
    (missing,) = second.problems
    assert missing.file == str(tmp_path / "absent") and "does not exist" in missing.reason


def test_json_round_trips_with_stable_keys(dataset: tuple[Path, DatasetStats]) -> None:
    document = dataset[1].to_json()
    assert json.loads(json.dumps(document)) == document
    assert list(document) == ["classes", "ignore_color", "tolerance", "splits", "duplicates"]
    train = document["splits"][0]
    assert train["image_sizes"] == [
        {"width": 8, "height": 6, "count": 2},
        {"width": 10, "height": 4, "count": 1},
    ]
    benign = {"name": "benign", "color": [0, 255, 0], "pixels": 9, "fraction": 9 / 92, "images": 2}
    assert train["classes"][1] == benign
    assert train["far_colors"] == [{"color": [0, 0, 200], "pixels": 2}]
    assert document["duplicates"] == {"threshold": dataset[1].duplicate_threshold, "leaks": 0, "clusters": []}


def test_process_pool_gives_the_same_numbers(dataset: tuple[Path, DatasetStats]) -> None:
    root, in_process = dataset
    splits = {name: SplitFolders(root / name / "images", root / name / "masks") for name in ("train", "val")}
    assert collect_stats(splits, TABLE, workers=2).to_json() == in_process.to_json()


def test_render_prints_every_table(dataset: tuple[Path, DatasetStats]) -> None:
    console = Console(record=True, width=200, color_system=None)
    render(dataset[1], console)
    text = console.export_text()
    expected_snippets = ("Files per split", "c.png", "RGBA (1)", "83.6957%", "(0, 0, 200) (2)", "none found")
    for expected in (*expected_snippets, "images/broken.png"):
        assert expected in text


def test_charts_are_valid_pngs(dataset: tuple[Path, DatasetStats], tmp_path: Path) -> None:
    written = write_charts(dataset[1], tmp_path / "charts")
    assert [p.name for p in written] == ["images_per_split.png", "class_fractions.png", "samples.png"]
    for path in written:
        assert path.stat().st_size > 1000
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 100
    samples = {(s.split, s.image.name) for s in dataset[1].samples}
    assert samples == {("train", "a.png"), ("train", "b.png"), ("val", "d.png")}


def test_charts_without_pairs_have_no_montage_and_no_warnings(tmp_path: Path) -> None:
    _save(tmp_path / "images" / "lonely.png", _noise((6, 8, 3), 7))
    stats = collect_stats({"s": SplitFolders(tmp_path / "images", tmp_path / "masks")}, TABLE, workers=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an all-zero log-scale chart must not warn
        written = write_charts(stats, tmp_path / "charts")
    assert [p.name for p in written] == ["images_per_split.png", "class_fractions.png"]


@pytest.fixture(scope="module")
def bcc_mini() -> DatasetStats:
    if not BCC_MINI.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{BCC_MINI} is missing; CI must provide the shared data")
        pytest.skip(f"shared data not present at {BCC_MINI}")
    table = ClassTable(TABLE.classes)  # the reference project's colours, no ignore colour
    return collect_stats({"all": SplitFolders(BCC_MINI / "images", BCC_MINI / "masks")}, table, workers=2)


def test_bcc_mini_counts(bcc_mini: DatasetStats) -> None:
    (split,) = bcc_mini.splits
    assert (split.images, split.masks, split.pairs, split.problems) == (24, 24, 24, ())
    assert split.image_sizes == (((512, 512), 24),) and split.image_modes == (("RGB", 24),)
    background, benign, malignant = split.classes
    assert benign.fraction > 0 and malignant.fraction > 0 and background.fraction > 0.95
    assert sum(c.fraction for c in split.classes) == pytest.approx(1.0, abs=1e-12)
    assert (benign.images, malignant.images) == (11, 13)
    assert split.far_pixels > 0  # JPEG-like colour noise around the class colours


def test_bcc_mini_deformed_copies_are_the_only_duplicates(bcc_mini: DatasetStats) -> None:
    # Checked by eye: the trailing number names the original; 22, 39 and 40 each appear twice.
    found = {frozenset(name for _, name in cluster.members) for cluster in bcc_mini.duplicates}
    assert found == {
        frozenset(("deformed_alpha_1300_sigmoid_10_22.png", "deformed_alpha_1300_sigmoid_8_22.png")),
        frozenset(("barrdistorted_1005_0.3_0.3_39.png", "deformed_alpha_1300_sigmoid_8_39.png")),
        frozenset(("barrdistorted_1003_0.3_0.3_40.png", "deformed_alpha_1300_sigmoid_8_40.png")),
    }
    assert all(not c.leak and c.max_distance < 0.05 for c in bcc_mini.duplicates)


def test_segkit_stats_names_the_splits_of_a_project_and_of_a_folder(tmp_path: Path) -> None:
    """A project file's dataset plugin gives its split folders; a folder gives ``<split>/images``."""
    from typer.testing import CliRunner

    from segkit.cli.main import app
    from tiny_data import write_tiny_project

    project = write_tiny_project(tmp_path)
    (tmp_path / "data" / "infer").rename(tmp_path / "infer")  # images without masks are not a split
    expected = {"train": 8, "valid": 4, "test": 4}
    for target, report in ((project, tmp_path / "p.json"), (tmp_path / "data", tmp_path / "f.json")):
        result = CliRunner().invoke(app, ["stats", str(target), "--json", str(report)])
        assert result.exit_code == 0, result.output
        splits = json.loads(report.read_text())["splits"]
        assert {s["name"]: s["pairs"] for s in splits} == expected
    # a folder's splits come in name order, a project's in the order its dataset gives them
    order = {name: [s["name"] for s in json.loads((tmp_path / name).read_text())["splits"]] for name in ("f.json", "p.json")}
    assert order == {"f.json": ["test", "train", "valid"], "p.json": ["train", "valid", "test"]}
