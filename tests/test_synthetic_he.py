"""The synthetic H&E tile generator: determinism, masks, class appearance, the cached dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segkit.classes import ClassInfo, ClassTable
from segkit_process import output_of, run_python
from segkit_synthetic.he_tiles import GENERATOR_VERSION, TileSettings, generate_tile
from segkit_synthetic.tile_folders import SETTINGS_FILE, dataset_is_current, write_dataset, write_split

DEFAULT = TileSettings()
BENIGN = np.array(DEFAULT.benign_color, np.uint8)
MALIGNANT = np.array(DEFAULT.malignant_color, np.uint8)


def _is(mask: np.ndarray, color: np.ndarray) -> np.ndarray:
    return (mask == color).all(axis=2)


def _gray(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _component_areas(foreground: np.ndarray) -> list[int]:
    """Pixel counts of the 4-connected components of a boolean image (min-label propagation)."""
    h, w = foreground.shape
    none = h * w + 1
    labels = np.where(foreground, np.arange(h * w).reshape(h, w), none)
    while True:
        padded = np.pad(labels, 1, constant_values=none)
        neighbours = np.stack(
            [labels, padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]
        ).min(axis=0)
        updated = np.where(foreground, neighbours, none)
        if np.array_equal(updated, labels):
            break
        labels = updated
    return np.unique(labels[foreground], return_counts=True)[1].tolist()


@pytest.fixture(scope="module")
def tiles() -> list[tuple[np.ndarray, np.ndarray]]:
    return [generate_tile(seed, DEFAULT) for seed in range(16)]


def test_tile_shape_and_dtype() -> None:
    for size in (64, 128, 96):
        image, mask = generate_tile(3, TileSettings(size=size))
        assert image.shape == mask.shape == (size, size, 3)
        assert image.dtype == mask.dtype == np.uint8


def test_same_seed_is_byte_identical_and_seeds_differ() -> None:
    image, mask = generate_tile(42, DEFAULT)
    again_image, again_mask = generate_tile(42, DEFAULT)
    assert image.tobytes() == again_image.tobytes()
    assert mask.tobytes() == again_mask.tobytes()
    other_image, other_mask = generate_tile(43, DEFAULT)
    assert image.tobytes() != other_image.tobytes()
    assert mask.tobytes() != other_mask.tobytes()


def test_generation_leaves_the_global_rng_alone() -> None:
    np.random.seed(0)
    expected = np.random.random()
    np.random.seed(0)
    generate_tile(5, DEFAULT)
    assert np.random.random() == expected


def test_mask_colours_are_class_colours(tiles: list[tuple[np.ndarray, np.ndarray]]) -> None:
    allowed = {tuple(c) for c in DEFAULT.class_colors}
    for _image, mask in tiles:
        assert {tuple(c) for c in np.unique(mask.reshape(-1, 3), axis=0).tolist()} <= allowed

    table = ClassTable(
        (
            ClassInfo("stroma", (255, 255, 255)),
            ClassInfo("benign", (0, 0, 255)),
            ClassInfo("malignant", (255, 255, 0)),
        )
    )
    custom = TileSettings.from_class_table(table, mixed_fraction=1.0)
    _image, mask = generate_tile(1, custom)
    colours = {tuple(c) for c in np.unique(mask.reshape(-1, 3), axis=0).tolist()}
    assert colours == {(255, 255, 255), (0, 0, 255), (255, 255, 0)}
    assert table.decode(mask)[1] == 0
    from_lists = TileSettings.from_colors([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    assert from_lists.class_colors == ((1, 2, 3), (4, 5, 6), (7, 8, 9))


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        TileSettings(malignant_fraction=1.5)
    with pytest.raises(ValueError):
        TileSettings(benign_color=(0, 0, 0))  # same as background
    with pytest.raises(ValueError):
        TileSettings(size=8)
    with pytest.raises(ValueError):
        TileSettings.from_colors([(0, 0, 0), (0, 255, 0)])
    with pytest.raises(ValueError):
        generate_tile(-1, DEFAULT)


def test_both_classes_appear_at_half_malignant(tiles: list[tuple[np.ndarray, np.ndarray]]) -> None:
    benign = [bool(_is(mask, BENIGN).any()) for _image, mask in tiles]
    malignant = [bool(_is(mask, MALIGNANT).any()) for _image, mask in tiles]
    assert sum(benign) >= 3 and sum(malignant) >= 3
    assert any(b and not m for b, m in zip(benign, malignant))  # benign-only tiles
    assert any(m and not b for b, m in zip(benign, malignant))  # malignant-only tiles
    assert any(b and m for b, m in zip(benign, malignant))  # mixed tiles


def test_fraction_zero_and_one_give_one_class() -> None:
    only_benign = TileSettings(malignant_fraction=0.0, mixed_fraction=0.0)
    only_malignant = TileSettings(malignant_fraction=1.0, mixed_fraction=0.5)
    for seed in range(8):
        _image, mask = generate_tile(seed, only_benign)
        assert _is(mask, BENIGN).any() and not _is(mask, MALIGNANT).any()
        _image, mask = generate_tile(seed, only_malignant)
        assert _is(mask, MALIGNANT).any() and not _is(mask, BENIGN).any()


def test_malignant_nuclei_are_larger_and_darker(tiles: list[tuple[np.ndarray, np.ndarray]]) -> None:
    areas: dict[str, list[int]] = {"benign": [], "malignant": []}
    pixels: dict[str, list[np.ndarray]] = {"benign": [], "malignant": [], "background": []}
    for image, mask in tiles[:10]:
        gray = _gray(image)
        for name, color in (("benign", BENIGN), ("malignant", MALIGNANT)):
            where = _is(mask, color)
            areas[name] += _component_areas(where)
            pixels[name].append(gray[where])
        pixels["background"].append(gray[(mask == 0).all(axis=2)])
    assert areas["benign"] and areas["malignant"]
    benign_area, malignant_area = np.mean(areas["benign"]), np.mean(areas["malignant"])
    assert malignant_area > 2.0 * benign_area, (benign_area, malignant_area)
    brightness = {name: float(np.concatenate(values).mean()) for name, values in pixels.items()}
    # Nuclei are what is drawn where the mask says so: far darker than the stroma around them.
    assert brightness["malignant"] + 15 < brightness["benign"] < brightness["background"] - 50, brightness


def test_nucleus_coverage_is_sane(tiles: list[tuple[np.ndarray, np.ndarray]]) -> None:
    coverage = [float((mask != 0).any(axis=2).mean()) for _image, mask in tiles]
    assert all(0.04 <= c <= 0.40 for c in coverage), coverage
    assert 0.10 <= np.mean(coverage) <= 0.25, np.mean(coverage)


def test_image_is_not_a_single_flat_colour_per_class(tiles: list[tuple[np.ndarray, np.ndarray]]) -> None:
    image, mask = tiles[0]
    background = _gray(image)[(mask == 0).all(axis=2)]
    assert background.std() > 3.0  # texture, gaps, noise


def test_module_does_not_import_tensorflow() -> None:
    code = (
        "import sys; import segkit_synthetic.he_tiles, segkit_synthetic.tile_folders; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    result = run_python(code)
    assert result.returncode == 0, output_of(result)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_write_split_writes_pairs(tmp_path: Path) -> None:
    write_split(tmp_path / "s", count=2, first_seed=10, settings=TileSettings(size=48))
    assert _files(tmp_path / "s") == {
        "images/tile_0000.png",
        "images/tile_0001.png",
        "masks/tile_0000.png",
        "masks/tile_0001.png",
        "instances/tile_0000.tif",
        "instances/tile_0001.tif",
    }
    from segkit.data.images import read_image

    image, _mask = generate_tile(11, TileSettings(size=48))
    assert np.array_equal(read_image(tmp_path / "s" / "images" / "tile_0001.png"), image)


def test_write_dataset_and_cache_keys(tmp_path: Path) -> None:
    root = tmp_path / "synthetic"
    settings = TileSettings(size=48)
    counts = {"train": 3, "val": 2}
    keys = write_dataset(root, counts=counts, seed=100, settings=settings)

    expected = {
        f"{split}/{kind}/tile_{i:04d}{suffix}"
        for split, n in counts.items()
        for kind, suffix in (("images", ".png"), ("masks", ".png"), ("instances", ".tif"))
        for i in range(n)
    }
    assert _files(root) == expected | {SETTINGS_FILE}
    stored = json.loads((root / SETTINGS_FILE).read_text())
    assert stored == keys
    assert stored["generator"] == GENERATOR_VERSION
    assert stored["seed"] == 100 and stored["counts"] == counts
    assert stored["settings"]["size"] == 48 and stored["settings"]["benign_color"] == [0, 255, 0]
    # Disjoint seeds: every tile of every split is a different tile.
    images = [(root / f).read_bytes() for f in sorted(expected) if "/images/" in f]
    assert len(set(images)) == len(images)

    assert dataset_is_current(root, counts, 100, settings)
    assert dataset_is_current(root, dict(reversed(list(counts.items()))), 100, settings)
    assert not dataset_is_current(root, counts, 101, settings)
    assert not dataset_is_current(root, {"train": 3, "val": 3}, 100, settings)
    assert not dataset_is_current(root, counts, 100, TileSettings(size=48, malignant_fraction=0.2))
    assert not dataset_is_current(root, counts, 100, TileSettings(size=48, malignant_color=(200, 0, 0)))
    assert not dataset_is_current(tmp_path / "nowhere", counts, 100, settings)

    (root / "val" / "masks" / "tile_0001.png").unlink()
    assert not dataset_is_current(root, counts, 100, settings)
    write_dataset(root, counts=counts, seed=100, settings=settings)
    (root / "train" / "instances" / "tile_0002.tif").unlink()
    assert not dataset_is_current(root, counts, 100, settings)


def test_regeneration_removes_stale_files(tmp_path: Path) -> None:
    root = tmp_path / "synthetic"
    settings = TileSettings(size=48)
    write_dataset(root, counts={"train": 3, "test": 1}, seed=0, settings=settings)
    (root / "notes.txt").write_text("mine")
    (root / "empty").mkdir()
    (root / "train" / "instances" / "tile_0007.png").write_text("mine too")  # not a name the generator writes
    write_dataset(root, counts={"train": 2}, seed=0, settings=settings)
    assert _files(root) == {
        "train/images/tile_0000.png",
        "train/images/tile_0001.png",
        "train/masks/tile_0000.png",
        "train/masks/tile_0001.png",
        "train/instances/tile_0000.tif",
        "train/instances/tile_0001.tif",
        SETTINGS_FILE,
        "notes.txt",  # not the generator's: left alone
        "train/instances/tile_0007.png",
    }
    assert not (root / "test").exists()
    assert (root / "empty").is_dir()
    assert dataset_is_current(root, {"train": 2}, 0, settings)
    assert not dataset_is_current(root, {"train": 3, "test": 1}, 0, settings)
