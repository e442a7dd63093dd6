"""The class mask of a slide (segkit/engine/slide_infer.py): tissue tiles only, blended, at level 0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from PIL import Image

from segkit.errors import DataError, ProjectError, RunStateError
from segkit.plugins import get_registry
from segkit.project import load_project
from segkit.slides.grid import Tile, tile_grid
from segkit.slides.open_slide import CheckedSlide, open_slide
from segkit.slides.pyramid import MaskCanvas
from segkit.slides.tissue import TissueMask, tissue_mask
from segkit.engine import slide_infer
from segkit.engine.slide_infer import SlideResult, segment_slide
from segkit.engine.sliding_window import gaussian_weights
from slide_files import pyramid_levels, synthetic_slide, write_pyramid
from tiny_data import tiny_project, write_tiny_project

#: the colour model's classes: glass, pink stroma, purple nuclei (RGB in [0, 1])
MEANS = np.array([(245, 245, 245), (230, 170, 200), (120, 60, 160)], np.float32) / 255
SLIDES = {"tissue_side": 64, "min_tissue_area": 0.0, "max_hole_area": 0.0, "overlap": 0.25}


def nearest_colour(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the colour model predicts for each pixel of a whole picture, the nearest of :data:`MEANS`, and
    where that is decided: a pixel as near two colours (e.g. (169, 125, 169)) goes either way in float32."""
    pixels = image.astype(np.float32)[..., None, :] / 255
    distances = np.sort(((pixels - MEANS) ** 2).sum(axis=-1), axis=-1)
    classes = ((pixels - MEANS) ** 2).sum(axis=-1).argmin(axis=-1).astype(np.uint8)
    return classes, distances[..., 1] - distances[..., 0] > 1e-4


def save_colour_model(path: Path, means: np.ndarray = MEANS) -> None:
    """A 1x1 convolution whose softmax peaks at each pixel's nearest class colour of ``means`` (sigma 0.05)."""
    import keras

    sharpness = 1 / (2 * 0.05**2)
    model = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Conv2D(3, 1, activation="softmax")])
    model.layers[0].set_weights([2 * sharpness * means.T[None, None], -sharpness * (means**2).sum(axis=1)])
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)


def colour_project(folder: Path, microns_per_pixel: float | None) -> Any:
    model = dict(tiny_project()["model"], microns_per_pixel=microns_per_pixel)
    path = write_tiny_project(folder, model=model, slides=SLIDES)
    save_colour_model(folder / "run" / "models" / "best_model.keras")
    return load_project(path)


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    image, _, _ = synthetic_slide(320, 256, seed=5, tile=64, margin=64)
    return image


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory, picture: np.ndarray) -> Path:
    path = tmp_path_factory.mktemp("slide") / "case.svs"
    write_pyramid(path, picture, style="aperio", microns_per_pixel=0.5, tile=64, levels=3)
    return path


def counted_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int, int, int]]:
    """Every region read from a slide from now on, as ``(level, x, y, width, height)``."""
    reads: list[tuple[int, int, int, int, int]] = []
    real = CheckedSlide.read_region

    def counting(self: CheckedSlide, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        reads.append((level, x, y, width, height))
        return real(self, level, x, y, width, height)

    monkeypatch.setattr(CheckedSlide, "read_region", counting)
    return reads


def footprints(tiles: list[Tile], shape: tuple[int, int]) -> np.ndarray:
    covered = np.zeros(shape, bool)
    for tile in tiles:
        covered[tile.y:tile.y + tile.height, tile.x:tile.x + tile.width] = True
    return covered


def every_tile(path: Path, level: int, scale: float = 1.0) -> list[Tile]:
    """The grid's tiles were the whole slide tissue (its glass tiles included)."""
    with open_slide(path, get_registry()) as opened:
        width, height = opened.level_dimensions[0]
        everywhere = TissueMask(np.ones((height, width), bool), 0, 1.0)
        return tile_grid(opened, level, scale, (64, 64), SLIDES["overlap"], everywhere, source=path)


def segmented(folder: Path, slide: Path, microns_per_pixel: float, monkeypatch: pytest.MonkeyPatch,
              side: int = 64) -> tuple[SlideResult, list[Tile], np.ndarray]:
    """The slide segmented by the colour model at ``microns_per_pixel``: the result, the tiles it read
    (``side`` pixels square, each once, checked here) and its saved mask's level 0."""
    project = colour_project(folder / "project", microns_per_pixel)
    out = folder / "out"
    out.mkdir()
    reads = counted_reads(monkeypatch)
    result = segment_slide(project, slide, out, get_registry())
    tile_reads = [(x, y) for level, x, y, w, h in reads if (level, w, h) == (result.level, side, side)]
    assert len(tile_reads) == result.tiles == len(set(tile_reads))  # each tissue tile read once
    read = [t for t in every_tile(slide, result.level, result.scale) if (t.x, t.y) in set(tile_reads)]
    assert len(read) == result.tiles
    return result, read, tifffile.imread(result.mask)


def test_level_0_of_the_mask_is_whole_image_prediction_and_glass_is_never_read(
        tmp_path: Path, slide: Path, picture: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    result, read, saved = segmented(tmp_path, slide, 0.5, monkeypatch)
    assert (result.level, result.scale) == (0, 1.0)
    expected, decided = nearest_colour(picture)
    glass = [t for t in every_tile(slide, 0) if t not in read]
    assert glass and all((picture[t.y:t.y + 64, t.x:t.x + 64] == 255).all() for t in glass)
    covered = footprints(read, picture.shape[:2])
    assert saved.shape == picture.shape[:2] and saved.dtype == np.uint8
    assert (saved[covered & decided] == expected[covered & decided]).all()
    assert not saved[~covered].any() and decided.mean() > 0.99
    assert set(np.unique(saved[covered])) == {0, 1, 2}  # the model is not painting one class
    with open_slide(slide, get_registry()) as opened:
        tissue = tissue_mask(opened, slide, method="all", min_side=64, min_tissue_area=0.0, max_hole_area=0.0)
    assert (np.asarray(Image.open(result.tissue)) == np.where(tissue.mask, 255, 0)).all()


def test_a_coarser_model_reads_level_1_and_its_classes_are_upscaled_to_level_0(
        tmp_path: Path, slide: Path, picture: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    result, read, saved = segmented(tmp_path, slide, 1.0, monkeypatch)
    assert (result.level, result.scale) == (1, 1.0)
    level_1 = pyramid_levels(picture, 2)[1]
    expected, decided = (np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)[:256, :320] for a in nearest_colour(level_1))
    covered = footprints(read, picture.shape[:2])
    assert (saved[covered & decided] == expected[covered & decided]).all() and not saved[~covered].any()
    assert set(np.unique(saved[covered])) == {0, 1, 2}


def test_a_model_between_levels_reads_larger_tiles_and_resamples_them(
        tmp_path: Path, slide: Path, picture: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    result, read, saved = segmented(tmp_path, slide, 0.75, monkeypatch, side=96)
    assert (result.level, result.scale) == (0, 1.5)
    expected, decided = nearest_colour(picture)
    covered = footprints(read, picture.shape[:2])
    assert not saved[~covered].any() and set(np.unique(saved[covered])) == {0, 1, 2}
    # bilinear down and up again blurs class borders by a pixel or so: the rest is the picture's classes
    agree = (saved == expected)[covered & decided].mean()
    assert 0.98 < agree < 1.0, agree  # measured: 0.992


def test_a_slide_without_a_pixel_size_is_one_line_and_writes_nothing(tmp_path: Path, picture: np.ndarray) -> None:
    project = colour_project(tmp_path / "project", 0.5)
    path = tmp_path / "bare.svs"
    write_pyramid(path, picture, style="aperio", microns_per_pixel=None, tile=64, levels=3)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError) as caught:
        segment_slide(project, path, out, get_registry())
    assert str(caught.value).startswith(f"{path}: the slide's metadata holds no pixel size (")
    assert "\n" not in str(caught.value) and list(out.iterdir()) == []


def test_a_model_without_a_pixel_size_is_one_line(tmp_path: Path, slide: Path) -> None:
    project = colour_project(tmp_path / "project", None)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ProjectError) as caught:
        segment_slide(project, slide, out, get_registry())
    assert str(caught.value) == (f"{project.source}: model.microns_per_pixel: not set, so the level a slide is read "
                                 "at is unknown (set it to the µm per pixel of the images the model was trained on)")
    assert list(out.iterdir()) == []


def test_overlaps_are_blended_with_gaussian_weights_as_one_whole_level_sum(
        tmp_path: Path, slide: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each tile gets its own random softmax, so every overlap's argmax depends on the weights: the band's,
    flushed row by row, equals summing every tile into one array the size of the level."""
    rng = np.random.default_rng(0)
    given: list[np.ndarray] = []

    def random_softmax(model: Any, tiles: list[np.ndarray], how: Any) -> list[np.ndarray]:
        given.extend(rng.random((len(tiles), 64, 64, 3), np.float32))
        return given[len(given) - len(tiles):]

    monkeypatch.setattr(slide_infer, "tile_softmax", random_softmax)
    result, read, saved = segmented(tmp_path, slide, 0.5, monkeypatch)
    assert len(given) == result.tiles and len(read) > 4
    weights = gaussian_weights(64, 64)
    total, norm = np.zeros((256 + 64, 320 + 64, 3), np.float32), np.zeros((256 + 64, 320 + 64, 1), np.float32)
    for tile, softmax in zip(sorted(read, key=lambda t: (t.row, t.column)), given):
        total[tile.y:tile.y + 64, tile.x:tile.x + 64] += softmax * weights
        norm[tile.y:tile.y + 64, tile.x:tile.x + 64] += weights
    overlapped = (footprints(read[0::2], saved.shape) & footprints(read[1::2], saved.shape)).sum()
    expected = np.where(norm[..., 0] > 0, total.argmax(axis=-1), 0)[:256, :320]
    assert overlapped > 1000 and (saved == expected).all()


def band_peak_bytes(folder: Path, height: int, width: int = 512) -> int:
    """Peak bytes NumPy allocates while a ``width x height`` slide, all tissue, goes through the band."""
    import tracemalloc

    from test_slide_tissue_grid import MemorySlide

    slide = CheckedSlide(MemorySlide([np.full((height, width, 3), 200, np.uint8)], 0.5), folder / "m.svs", "memory",
                         None)
    tissue = TissueMask(np.ones((height // 8, width // 8), bool), 0, 8.0)
    tiles = tile_grid(slide, 0, 1.0, (64, 64), 0.25, tissue, source=slide.path)
    setup = slide_infer._Setup(slide, (0.5, 0.5), 0, 1.0, tissue, tiles)
    constant = np.full((64, 64, 3), 1 / 3, np.float32)
    with MaskCanvas(folder, width, height) as canvas:
        tracemalloc.start()
        slide_infer._predict_into(canvas, setup, lambda pixels: [constant] * len(pixels), 8, 3)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_the_bands_memory_does_not_grow_with_the_slides_height(tmp_path: Path) -> None:
    # the least of three runs each: the writer thread's and the read-ahead's share of the peak depends on
    # when they ran (a single run's peak varied by 250 KB here); what must not appear is growth with the
    # height, which for 3584 rows more would be 3584 x 512 x 3 x 4 bytes = 22 MB of softmax sums
    short = min(band_peak_bytes(tmp_path, 512) for _ in range(3))
    tall = min(band_peak_bytes(tmp_path, 4096) for _ in range(3))
    one_band = 64 * 512 * 3 * 4
    assert tall - short < one_band, (short, tall)
    assert short < 4 * 64 * 512 * 4 * 4 + 8 * 64 * 64 * 3 * 4  # a few bands and a batch, not a level


def test_outputs_already_there_a_slide_of_glass_or_no_model_are_one_line_and_nothing_is_replaced(
        tmp_path: Path, slide: Path) -> None:
    project = colour_project(tmp_path / "project", 0.5)
    out = tmp_path / "out"
    out.mkdir()
    earlier = out / "case.mask.ome.tif"
    earlier.write_bytes(b"a mask of before")
    with pytest.raises(DataError) as caught:
        segment_slide(project, slide, out, get_registry())
    assert str(caught.value) == f"{earlier}: already exists (move it, choose another output folder, or overwrite it)"
    assert earlier.read_bytes() == b"a mask of before" and sorted(out.iterdir()) == [earlier]
    blank = tmp_path / "blank.svs"
    write_pyramid(blank, np.full((256, 320, 3), 255, np.uint8), style="aperio", tile=64, levels=3)
    with pytest.raises(DataError) as caught:
        segment_slide(project, blank, out, get_registry())
    assert str(caught.value).startswith(f"{blank}: no tissue found on level 2 (80x64 px") and "\n" not in str(caught.value)
    assert sorted(out.iterdir()) == [earlier]
    (project.output_dir / "models" / "best_model.keras").unlink()
    with pytest.raises(RunStateError, match="no trained model yet"):
        segment_slide(project, slide, out, get_registry(), overwrite=True)
    assert sorted(out.iterdir()) == [earlier]
    save_colour_model(project.output_dir / "models" / "best_model.keras")
    result = segment_slide(project, slide, out, get_registry(), overwrite=True)
    assert tifffile.imread(result.mask).shape == (256, 320)
