"""The ``ucsb-bcc`` preparer: pairing by stem, splitting by core, mask colours, ignore region, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cli_results import snapshot
from segkit import toml_io
from segkit.errors import DataError
from segkit.plugins import get_registry
from segkit.project import load_project
from segkit.specs import PrepareReport, PreparerRequest
from segkit_process import output_of, run_python
from segkit_ucsb.prepare_ucsb import bbox_region, hull_region, nuclei_region, split_cores, split_sizes
from shared_data import shared_data
from ucsb_miniature import COLOURS, CORES, WHITE, H, W, make_ucsb

def prepare(source: Path, output: Path, **options: Any) -> PrepareReport:
    return get_registry().get("preparer", "ucsb-bcc").spec.build(PreparerRequest(source, output, options))


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    make_ucsb(tmp_path / "ucsb")
    return tmp_path / "ucsb"


def test_every_pair_lands_in_the_split_of_its_core(source: Path, tmp_path: Path) -> None:
    report = prepare(source, tmp_path / "out")
    record = json.loads((tmp_path / "out" / "split.json").read_text())
    assert report.counts == {"train": 4, "valid": 2, "test": 2}
    assert report.project_file == tmp_path / "out" / "ucsb-bcc.toml"
    assert record["seed"] == 0 and record["ratios"] == {"train": 0.65, "valid": 0.15, "test": 0.2}
    assert sorted(record["groups"]) == sorted(CORES)
    assert sorted(record["groups"].values()) == ["test", "train", "train", "valid"]
    for split, stems in record["splits"].items():
        assert stems == sorted(f"{c}_{CORES[c]}{n}" for c, s in record["groups"].items() if s == split
                               for n in (1, 2))
        for kind in ("images", "masks"):
            assert sorted(p.name for p in (tmp_path / "out" / split / kind).iterdir()) == [f"{s}.png" for s in stems]


def test_images_are_copied_and_masks_coloured_by_class(tmp_path: Path) -> None:
    written = make_ucsb(tmp_path / "again")
    prepare(tmp_path / "again", tmp_path / "out")
    groups = json.loads((tmp_path / "out" / "split.json").read_text())["groups"]
    for stem, (image, mask) in written.items():
        core, label = stem.rsplit("_", 1)[0], stem.rsplit("_", 1)[1].rstrip("12")
        folder = tmp_path / "out" / groups[core]
        assert np.array_equal(png(folder / "images" / f"{stem}.png"), image)
        coloured = png(folder / "masks" / f"{stem}.png")
        expected = np.zeros((H, W, 3), np.uint8)
        expected[mask > 127] = COLOURS[label]
        assert np.array_equal(coloured, expected)
        assert coloured.shape == (H, W, 3) and coloured[6, 7].tolist() == list(COLOURS[label])
        assert coloured[15, 21].tolist() == [0, 0, 0]


def test_the_split_is_deterministic_for_a_seed(source: Path, tmp_path: Path) -> None:
    prepare(source, tmp_path / "a", seed=3)
    prepare(source, tmp_path / "b", seed=3)
    assert (tmp_path / "a" / "split.json").read_text() == (tmp_path / "b" / "split.json").read_text()
    labels = dict.fromkeys(CORES, "malignant")
    assert len({tuple(sorted(split_cores(labels, 0.15, 0.2, seed).items())) for seed in range(10)}) > 1


@pytest.mark.parametrize("n, sizes", [(1, (1, 0, 0)), (2, (2, 0, 0)), (3, (1, 1, 1)), (7, (5, 1, 1)),
                                      (10, (6, 2, 2)), (30, (19, 5, 6))])
def test_split_sizes_keep_one_core_per_split_from_three(n: int, sizes: tuple[int, int, int]) -> None:
    assert tuple(split_sizes(n, 0.15, 0.2).values()) == sizes
    assert split_sizes(5, 0.0, 0.2) == {"train": 4, "valid": 0, "test": 1}


def test_split_spreads_benign_and_malignant_cores_over_the_splits() -> None:
    labels = {f"core{i:02d}": "benign" if i % 2 else "malignant" for i in range(12)}
    for seed in range(20):
        groups = split_cores(labels, 0.15, 0.2, seed)
        for split, per_class in (("train", 4), ("valid", 1), ("test", 1)):
            held = [labels[c] for c, s in groups.items() if s == split]
            assert sorted(held) == ["benign"] * per_class + ["malignant"] * per_class, (seed, split)


def test_ignore_paints_exactly_outside_the_grown_bounding_box(source: Path, tmp_path: Path) -> None:
    prepare(source, tmp_path / "out", ignore_margin=2)
    record = json.loads((tmp_path / "out" / "split.json").read_text())
    for split, stems in record["splits"].items():
        for stem in stems:
            mask = png(tmp_path / "out" / split / "masks" / f"{stem}.png")
            shift = int(stem[-1]) - 1
            ignored = np.all(mask == WHITE, axis=2)
            box = np.zeros((H, W), bool)
            box[5 + shift - 2: 17 + shift + 2 + 1, 6 + shift - 2: 25 + shift + 2 + 1] = True
            assert np.array_equal(ignored, ~box), stem
            assert ignored.sum() == H * W - (17 - 5 + 5) * (25 - 6 + 5)  # 1280 - 17 * 24 = 872
    assert "ignore_color = [255, 255, 255]" in (tmp_path / "out" / "ucsb-bcc.toml").read_text()


def test_ignore_region_is_clipped_to_the_image_and_uses_the_ignore_color(tmp_path: Path) -> None:
    nuclei = np.zeros((H, W), bool)
    nuclei[0:3, 35:40] = True
    assert bbox_region(nuclei, 4).sum() == (3 + 4) * (5 + 4)
    source = tmp_path / "ucsb"
    make_ucsb(source)
    prepare(source, tmp_path / "out", ignore_margin=0, ignore_color=[0, 0, 255])
    masks = [png(p) for p in (tmp_path / "out").glob("*/masks/*.png")]
    assert all(int(np.all(m == (0, 0, 255), axis=2).sum()) == H * W - 13 * 20 for m in masks)


def test_hull_region_is_tighter_than_the_box_and_keeps_every_nucleus() -> None:
    nuclei = np.zeros((H, W), bool)
    nuclei[2:5, 2:5] = nuclei[25:28, 30:33] = True
    for margin in (0, 3):
        hull, box = hull_region(nuclei, margin), bbox_region(nuclei, margin)
        assert hull[nuclei].all() and not (hull & ~box).any()
        assert hull.sum() < box.sum() and not hull[27, 2] and not hull[2, 32]
    square = np.zeros((H, W), bool)
    square[10:20, 5:30] = True
    assert np.array_equal(hull_region(square, 3), bbox_region(square, 3))
    dot = np.zeros((H, W), bool)
    dot[10, 10] = True
    assert hull_region(dot, 2).sum() == 25 and hull_region(np.eye(H, W, dtype=bool)[:5], 0).sum() == 5


def test_nuclei_region_grows_each_outline_and_leaves_far_pixels_out() -> None:
    dot = np.zeros((H, W), bool)
    dot[15, 15] = True
    assert np.array_equal(nuclei_region(dot, 0), dot)
    grown = nuclei_region(dot, 4)
    rows, cols = np.nonzero(grown)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (11, 19, 11, 19)  # 4 px each way
    assert grown[15, 11] and grown[13, 13] and not grown[11, 11]  # an octagon: no square corners
    assert grown.sum() == 9 * 9 - 4 * 3  # the 3 corner pixels of each 4x4 corner square are cut
    nuclei = np.zeros((H, W), bool)
    nuclei[2:5, 2:5] = nuclei[25:28, 30:33] = True
    near = nuclei_region(nuclei, 3)
    assert near[nuclei].all() and not (near & ~bbox_region(nuclei, 3)).any()
    assert not near[15, 16]  # the middle of the box: far from both outlines


def test_hull_option_writes_a_smaller_region(source: Path, tmp_path: Path) -> None:
    prepare(source, tmp_path / "box", ignore_margin=1)
    prepare(source, tmp_path / "hull", ignore_margin=1, ignore_region="hull")
    prepare(source, tmp_path / "nuclei", ignore_margin=1, ignore_region="nuclei")
    for path in (tmp_path / "box").glob("*/masks/*.png"):
        box, hull, near = (png(tmp_path / shape / path.relative_to(tmp_path / "box"))
                           for shape in ("box", "hull", "nuclei"))
        ignored = [int(np.all(mask == WHITE, axis=2).sum()) for mask in (box, hull, near)]
        assert ignored[0] < ignored[1] < ignored[2]
        labelled = [np.any(mask != WHITE, axis=2) & np.any(mask != 0, axis=2) for mask in (box, hull, near)]
        assert np.array_equal(labelled[0], labelled[1]) and np.array_equal(labelled[0], labelled[2])


def test_a_mask_without_labels_is_all_ignore_and_noted(source: Path, tmp_path: Path) -> None:
    Image.fromarray(np.zeros((H, W), np.uint8)).save(source / "Masks" / "ytma12_010804_malignant2.TIF")
    report = prepare(source, tmp_path / "out", ignore_margin=8)
    [mask_path] = (tmp_path / "out").glob("*/masks/ytma12_010804_malignant2.png")
    assert np.all(png(mask_path) == WHITE)
    assert any("ytma12_010804_malignant2: no labelled pixel" in note for note in report.notes)


def test_refuses_a_non_empty_output_and_changes_nothing(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "train" / "images").mkdir(parents=True)
    (out / "keep.txt").write_text("mine")
    (out / "train" / "images" / "stale.png").write_bytes(b"old")
    before = snapshot(out)
    with pytest.raises(DataError, match="output folder is not empty.*overwrite=true"):
        prepare(source, out)
    assert snapshot(out) == before
    # stale.png is no file a preparation wrote (no manifest lists it): overwrite must not delete it
    with pytest.raises(DataError, match=r"train/images/stale\.png: was not written by segkit prepare"):
        prepare(source, out, overwrite=True)
    assert snapshot(out) == before


@pytest.mark.parametrize("breakage, message", [
    (lambda s: (s / "Masks" / "ytma23_022103_malignant1.TIF").unlink(),
     r"ytma23_022103_malignant1_ccd\.tif: no mask .*Masks/ytma23_022103_malignant1\.TIF"),
    (lambda s: (s / "Images").rename(s / "originals"), r"no Images/ folder"),
    (lambda s: (s / "Masks" / "ytma10_010704_benign2.TIF").write_bytes(b"not a tiff"),
     r"ytma10_010704_benign2\.TIF: cannot be read as an image"),
    (lambda s: Image.new("L", (W, H + 1)).save(s / "Masks" / "ytma10_010704_benign1.TIF"), r"mask is 40x33"),
    (lambda s: (s / "Images" / "stray_ccd.tif").write_bytes(b""), r"stray_ccd\.tif: no mask"),
])
def test_bad_input_is_one_clear_error_and_writes_nothing(source: Path, tmp_path: Path, breakage: Any,
                                                          message: str) -> None:
    breakage(source)
    with pytest.raises(DataError, match=message) as info:
        prepare(source, tmp_path / "out")
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()


def test_bad_options_are_refused(source: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a class colour"):
        prepare(source, tmp_path / "out", ignore_margin=0, ignore_color=[0, 255, 0])
    with pytest.raises(DataError, match="below 1 together"):
        prepare(source, tmp_path / "out", valid_ratio=0.5, test_ratio=0.5)
    with pytest.raises(DataError, match="unknown option"):
        prepare(source, tmp_path / "out", margin=3)


def test_suffixes_match_in_any_case_and_orphan_masks_are_noted(source: Path, tmp_path: Path) -> None:
    image = source / "Images" / "ytma12_010804_malignant1_ccd.tif"
    image.rename(image.with_name("ytma12_010804_malignant1_CCD.TIFF"))
    Image.new("L", (W, H)).save(source / "Masks" / "ytma99_010101_benign1.tif")
    report = prepare(source, tmp_path / "out")
    assert sum(report.counts.values()) == 8 and any((tmp_path / "out").glob("*/images/ytma12_010804_malignant1.png"))
    assert any("ytma99_010101_benign1.tif: mask without an image" in note for note in report.notes)


def test_the_written_project_loads(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare(source, out, ignore_margin=4)
    text = (out / "ucsb-bcc.toml").read_text()
    assert text.startswith("# UCSB breast-cancer-cell") and str(out) not in text.split("[project]")[1]
    project = load_project(out / "ucsb-bcc.toml")
    assert project.classes.names == ("background", "benign", "malignant")
    assert project.classes.ignore_color == (255, 255, 255)
    assert project.dataset.name == "categorized-masks"
    # UCSB masks are class masks only: no instance folder, so objects are their connected components
    assert project.dataset.options["valid"] == {"images": out / "valid" / "images", "masks": out / "valid" / "masks",
                                                "instances": None}
    assert (project.model.name, project.model.image_width, project.model.image_height) == ("flexunet", 128, 128)
    # the settings measured by benchmarks/bench_ucsb.py with projects/ucsb-bcc.toml, paths aside
    shipped = toml_io.loads((Path(__file__).resolve().parents[1] / "projects" / "ucsb-bcc.toml").read_text())
    written = toml_io.loads(text)
    for section in ("model", "augment", "train", "optimizer", "loss", "metrics", "classes", "mask"):
        assert written[section] == shipped[section], section
    assert written["infer"]["tta"] is shipped["infer"]["tta"] is True
    assert project.model.options["base_filters"] == 16 and project.augment.crop
    assert (project.train.epochs, project.train.cache) == (30, "memory")
    assert project.callbacks[0].name == "epoch-change-inferencer"
    assert project.callbacks[0].options["images"] == project.infer.images == out / "test" / "images"


def test_the_plugin_imports_no_tensorflow() -> None:
    code = "import sys, segkit_ucsb; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    result = run_python(code)
    assert result.returncode == 0, output_of(result)


def test_real_ucsb_sample(tmp_path: Path) -> None:
    source = shared_data("ucsb-bcc-sample")
    report = prepare(source, tmp_path / "out", ignore_margin=16)
    record = json.loads((tmp_path / "out" / "split.json").read_text())
    assert sum(report.counts.values()) == 20 and all(report.counts.values())
    assert len(record["groups"]) == 7
    for split, stems in record["splits"].items():
        assert {record["groups"][s.rsplit("_", 1)[0]] for s in stems} <= {split}
        for stem in stems:
            mask = png(tmp_path / "out" / split / "masks" / f"{stem}.png")
            packed = np.unique(mask.astype(np.int32) @ np.array([1 << 16, 1 << 8, 1]))
            assert set(packed.tolist()) == {0x000000, 0xFF0000, 0xFFFFFF}, stem
    assert load_project(report.project_file).classes.ignore_color == WHITE
