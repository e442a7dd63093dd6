"""Tissue masks, the level a model reads and the tile grid of a slide (segkit/slides/tissue.py, grid.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cli_results import invoke, single_error_line
from segkit.errors import DataError
from segkit.project import load_project
from segkit.slides.grid import Tile, choose_level, level_zero, tile_grid
from segkit.slides.open_slide import level_origin
from segkit.slides.tissue import TissueMask, tissue_level, tissue_mask, write_tissue_png
from slide_files import GLASS, pyramid_levels
from tiny_data import write_tiny_project

SOURCE = Path("slide.svs")
TISSUE = {"method": "all", "min_side": 256, "min_tissue_area": 5000.0, "max_hole_area": 10000.0}


class MemorySlide:
    """A :class:`segkit.specs.Slide` held in memory: ``levels`` as given, downsamples from their sizes
    unless ``downsamples`` says otherwise (OpenSlide's are a hair off whole numbers)."""

    def __init__(self, levels: list[np.ndarray], microns_per_pixel: float | None = 0.25,
                 downsamples: tuple[float, ...] | None = None) -> None:
        self.levels = levels
        self.level_dimensions = tuple((a.shape[1], a.shape[0]) for a in levels)
        self.level_downsamples = downsamples or tuple(levels[0].shape[1] / a.shape[1] for a in levels)
        self.microns_per_pixel = None if microns_per_pixel is None else (microns_per_pixel, microns_per_pixel)

    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        downsample = self.level_downsamples[level]
        column, row = level_origin(x, downsample), level_origin(y, downsample)
        out = np.full((height, width, 3), GLASS, np.uint8)
        part = self.levels[level][row:row + height, column:column + width]
        out[:part.shape[0], :part.shape[1]] = part
        return out

    def close(self) -> None:
        pass

    def __enter__(self) -> MemorySlide:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def glass(height: int, width: int, seed: int) -> np.ndarray:
    """Glass as a scanner sees it: near-white, faintly tinted, noisy."""
    noise = np.random.default_rng(seed).normal(0, 2.5, (height, width, 3))
    return (np.array([244, 242, 246]) + noise).clip(0, 255).astype(np.uint8)


def slide_with_tissue(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A 2048x1536 picture, 70% glass: synthetic H&E inside an ellipse and a rectangle, and two dark
    grey dust specks on the glass. Returns the picture and where the tissue was put."""
    from segkit_synthetic.he_tiles import TileSettings, generate_tile_with_instances

    height, width = 1536, 2048
    texture = np.tile(generate_tile_with_instances(seed, TileSettings(size=256))[0], (height // 256, width // 256, 1))
    yy, xx = np.mgrid[0:height, 0:width]
    truth = ((yy - 700) / 380) ** 2 + ((xx - 700) / 480) ** 2 <= 1
    truth[300:1300, 1450:1800] = True
    image = np.where(truth[..., None], texture, glass(height, width, seed))
    for y, x in ((150, 1500), (1400, 200)):
        image[y:y + 12, x:x + 12] = 60  # dust: dark, grey
    return image, truth


@pytest.fixture(scope="module")
def tissue_slide() -> tuple[MemorySlide, np.ndarray]:
    image, truth = slide_with_tissue()
    return MemorySlide(pyramid_levels(image, 4)), truth


def low_resolution_truth(truth: np.ndarray, factor: int) -> np.ndarray:
    height, width = truth.shape
    return truth.reshape(height // factor, factor, width // factor, factor).mean(axis=(1, 3)) >= 0.5


def test_the_tissue_mask_matches_where_tissue_was_put(tissue_slide: tuple[MemorySlide, np.ndarray]) -> None:
    slide, truth = tissue_slide
    tissue = tissue_mask(slide, SOURCE, **TISSUE)
    assert (tissue.level, tissue.downsample, tissue.mask.shape) == (3, 8.0, (192, 256))
    expected = low_resolution_truth(truth, 8)
    iou = (tissue.mask & expected).sum() / (tissue.mask | expected).sum()
    assert iou > 0.9, iou
    assert not tissue.mask[150 // 8:(150 + 12) // 8 + 1, 1500 // 8:(1500 + 12) // 8 + 1].any()  # the dust
    assert tissue.mask.mean() == pytest.approx(expected.mean(), abs=0.02) and expected.mean() < 0.31
    assert tissue.area_mm2((0.25, 0.25)) == pytest.approx(tissue.mask.sum() * 64 * 0.0625 / 1e6)
    # a region counts the mask pixels whose centre lies in it: level-0 800..1600 x 400..1000 is mask 100..200 x 50..125
    inside = tissue.mask[50:125, 100:200].sum()
    assert 0 < inside < tissue.mask.sum()
    assert tissue.area_mm2((0.25, 0.25), (800, 400, 800, 600)) == pytest.approx(inside * 64 * 0.0625 / 1e6)


@pytest.mark.parametrize("method", ["saturation", "optical_density"])
def test_each_test_alone_finds_the_tissue(tissue_slide: tuple[MemorySlide, np.ndarray], method: str) -> None:
    slide, truth = tissue_slide
    mask = tissue_mask(slide, SOURCE, **{**TISSUE, "method": method}).mask
    expected = low_resolution_truth(truth, 8)
    assert (mask & expected).sum() / (mask | expected).sum() > 0.9


def test_no_tile_is_kept_on_glass(tissue_slide: tuple[MemorySlide, np.ndarray]) -> None:
    slide, truth = tissue_slide
    tissue = tissue_mask(slide, SOURCE, **TISSUE)
    tiles = tile_grid(slide, 0, 1.0, (128, 128), 0.25, tissue, source=SOURCE)
    everything = tile_grid(slide, 0, 1.0, (128, 128), 0.25, all_tissue(slide), source=SOURCE)
    shares = {t: truth[t.y:t.y + t.height, t.x:t.x + t.width].mean() for t in everything}
    assert all(shares[t] > 0 for t in tiles)  # every tile kept holds tissue
    # every tile with more than a sliver of tissue is kept (the mask's pixels are 8x8 of level 0)
    assert {t for t, share in shares.items() if share > 0.02} <= set(tiles)
    assert len(tiles) < 0.5 * len(everything)


def test_a_slide_of_tissue_only_is_tissue_everywhere() -> None:
    from segkit_synthetic.he_tiles import TileSettings, generate_tile_with_instances

    # Otsu alone would split the pale stroma from the nuclei here: its bounds keep every pixel
    texture = np.tile(generate_tile_with_instances(5, TileSettings(size=256))[0], (4, 4, 1))
    tissue = tissue_mask(MemorySlide(pyramid_levels(texture, 3)), SOURCE, **TISSUE)
    assert tissue.mask.shape == (256, 256) and tissue.mask.all()


def test_a_slide_of_glass_only_is_one_line() -> None:
    slide = MemorySlide(pyramid_levels(glass(1024, 1024, 1), 3))
    with pytest.raises(DataError) as raised:
        tissue_mask(slide, SOURCE, **TISSUE)
    assert str(raised.value) == (
        "slide.svs: no tissue found on level 2 (256x256 px, [slides] tissue = 'all') (check that the slide is not "
        "blank, or try another [slides] tissue or a smaller min_tissue_area)")


def test_specks_and_holes_follow_the_pixel_size() -> None:
    image = glass(512, 512, 2)
    image[100:300, 100:300] = (200, 120, 170)  # tissue with a 20x20 hole, and a 10x10 speck beside it
    image[190:210, 190:210] = glass(20, 20, 5)
    image[400:410, 400:410] = (200, 120, 170)
    small = tissue_mask(MemorySlide([image], 1.0), SOURCE, **{**TISSUE, "min_tissue_area": 50, "max_hole_area": 50})
    assert small.mask[195, 195] == False and small.mask[405, 405] == True  # noqa: E712 (numpy bools)
    large = tissue_mask(MemorySlide([image], 1.0), SOURCE, **{**TISSUE, "min_tissue_area": 101, "max_hole_area": 401})
    assert large.mask[195, 195] == True and large.mask[405, 405] == False  # noqa: E712
    assert large.mask.sum() == 200 * 200  # the square, its hole filled, nothing else


def test_a_level_without_a_small_enough_level_is_reduced_in_blocks() -> None:
    image = glass(1200, 2100, 4)
    image[300:900, 600:1500] = (200, 120, 170)
    tissue = tissue_mask(MemorySlide([image]), SOURCE, **{**TISSUE, "min_side": 256})
    assert (tissue.level, tissue.downsample, tissue.mask.shape) == (0, 4.0, (300, 525))
    expected = np.zeros((300, 525), bool)
    expected[75:225, 150:375] = True
    assert np.array_equal(tissue.mask, expected)


def test_the_tissue_level_is_the_smallest_long_enough() -> None:
    slide = MemorySlide(pyramid_levels(glass(1024, 2048, 0), 4))
    assert [tissue_level(slide, side) for side in (2048, 1024, 300, 256, 64, 4096)] == [0, 1, 2, 3, 3, 0]


def test_the_tissue_png_is_the_mask(tmp_path: Path) -> None:
    mask = np.zeros((5, 7), bool)
    mask[1:3, 2:6] = True
    write_tissue_png(tmp_path / "tissue.png", mask)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "tissue.png")), np.where(mask, 255, 0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tissue.png"]


def pyramid_slide(mpps: list[float]) -> MemorySlide:
    """A slide whose levels have these pixel sizes (µm); its pixels do not matter."""
    levels = [np.zeros((max(1, round(4096 * mpps[0] / m)),) * 2 + (3,), np.uint8) for m in mpps]
    return MemorySlide(levels, mpps[0], tuple(m / mpps[0] for m in mpps))


@pytest.mark.parametrize(("mpps", "target", "expected"), [
    ([0.25, 0.5, 1.0, 2.0], 0.5, (1, 1.0)),  # a level at the target
    ([0.25, 0.5, 1.0, 2.0], 0.8, (1, 1.6)),  # the coarsest level finer than the target, shrunk
    ([0.25, 0.5, 1.0, 2.0], 0.54, (1, 1.08)),
    ([0.25, 0.5, 1.0, 2.0], 0.95, (2, 1.0)),  # 1.0 is within 10% of 0.95: read as it is
    ([0.25, 0.5, 1.0, 2.0], 0.9, (1, 1.8)),  # 1.0 is 11% coarser than 0.9: not
    ([0.25, 0.5, 1.0, 2.0], 8.0, (3, 4.0)),  # coarser than every level: the last one, shrunk
    ([0.2527, 1.0108], 0.25, (0, 1.0)),  # a target finer than level 0 by 1%: level 0 as it is
    ([0.5, 2.0], 0.4546, (0, 1.0)),  # finer by 9.98%: still allowed
])
def test_the_level_a_model_reads(mpps: list[float], target: float, expected: tuple[int, float]) -> None:
    level, scale = choose_level(pyramid_slide(mpps), target, source=SOURCE)
    assert (level, round(scale, 6)) == expected


def test_a_target_finer_than_level_0_beyond_10_percent_is_one_line() -> None:
    with pytest.raises(DataError) as raised:
        choose_level(pyramid_slide([0.5, 2.0]), 0.45, source=SOURCE)
    assert str(raised.value) == (
        "slide.svs: the model's pixel size, 0.45 µm, is finer than the slide's level 0, 0.5 µm per pixel (upsampling "
        "invents detail: use a model trained at 0.5 µm per pixel or coarser, or correct [model] microns_per_pixel)")


def test_a_slide_without_a_pixel_size_cannot_choose_a_level() -> None:
    with pytest.raises(DataError, match=r"^slide.svs: the slide's metadata holds no pixel size"):
        choose_level(MemorySlide([np.zeros((8, 8, 3), np.uint8)], None), 0.5, source=SOURCE)


def all_tissue(slide: MemorySlide) -> TissueMask:
    width, height = slide.level_dimensions[-1]
    return TissueMask(np.ones((height, width), bool), len(slide.levels) - 1, slide.level_downsamples[-1])


def core_counts(tiles: list[Tile], shape: tuple[int, int]) -> np.ndarray:
    counts = np.zeros(shape, np.int32)
    for tile in tiles:
        core = tile.core
        assert tile.x <= core.x and core.x + core.width <= tile.x + tile.width  # a core lies in its footprint
        assert tile.y <= core.y and core.y + core.height <= tile.y + tile.height
        counts[core.y:core.y + core.height, core.x:core.x + core.width] += 1
    return counts


@pytest.mark.parametrize(("scale", "overlap", "region"), [
    (1.0, 0.25, None), (1.6, 0.5, None), (1.0, 0.0, (37, 61, 901, 555)), (1.3, 0.25, (5, 3, 50, 40)),
])
def test_tile_cores_partition_the_region(tissue_slide: tuple[MemorySlide, np.ndarray], scale: float,
                                         overlap: float, region: tuple[int, int, int, int] | None) -> None:
    slide, _ = tissue_slide
    tiles = tile_grid(slide, 1, scale, (96, 64), overlap, all_tissue(slide), region, source=SOURCE)
    x, y, width, height = region or (0, 0, 2048, 1536)
    counts = core_counts(tiles, (1536, 2048))
    assert (counts[y:y + height, x:x + width] == 1).all() and counts.sum() == width * height
    read = (round(96 * scale), round(64 * scale))
    assert all((t.read_width, t.read_height, t.width, t.height) == (*read, 2 * read[0], 2 * read[1]) for t in tiles)
    assert [(t.row, t.column) for t in tiles] == sorted((t.row, t.column) for t in tiles)  # raster order


def test_the_cores_cover_every_tissue_pixel_once(tissue_slide: tuple[MemorySlide, np.ndarray]) -> None:
    slide, _ = tissue_slide
    tissue = tissue_mask(slide, SOURCE, **TISSUE)
    counts = core_counts(tile_grid(slide, 1, 1.25, (128, 128), 0.25, tissue, source=SOURCE), (1536, 2048))
    at_level_0 = np.kron(tissue.mask, np.ones((8, 8), bool))
    assert (counts[at_level_0] == 1).all() and counts.max() == 1


def test_a_tile_reads_what_its_level_0_footprint_shows(tissue_slide: tuple[MemorySlide, np.ndarray]) -> None:
    slide, _ = tissue_slide
    level0 = slide.levels[0]
    for tile in tile_grid(slide, 2, 1.0, (64, 48), 0.25, all_tissue(slide), (100, 50, 700, 500), source=SOURCE):
        column, row = tile.x // 4, tile.y // 4
        assert (tile.x, tile.y, tile.width, tile.height) == (4 * column, 4 * row, 4 * 64, 4 * 48)
        read = slide.read_region(tile.level, tile.x, tile.y, tile.read_width, tile.read_height)
        assert np.array_equal(read, slide.levels[2][row:row + 48, column:column + 64])
        assert np.array_equal(pyramid_levels(level0[tile.y:tile.y + tile.height, tile.x:tile.x + tile.width], 3)[2],
                              read)  # level 2 of the footprint is what was read


def test_coordinates_map_back_to_level_0_with_openslides_downsamples() -> None:
    slide = MemorySlide([np.zeros((4001, 6003, 3), np.uint8), np.zeros((1000, 1500, 3), np.uint8)],
                        downsamples=(1.0, 4.0012))
    tissue = TissueMask(np.ones((1000, 1500), bool), 1, 4.0012)
    tiles = tile_grid(slide, 1, 1.0, (256, 256), 0.25, tissue, source=SOURCE)
    for tile in tiles:
        column = level_origin(tile.x, 4.0012)
        assert level_zero(column, 4.0012) == tile.x and level_zero(column + 256, 4.0012) == tile.x + tile.width
    assert (core_counts(tiles, (4001, 6003)) == 1).all()


@pytest.mark.parametrize("region", [(-1, 0, 10, 10), (2040, 0, 9, 10), (0, 1530, 10, 7), (0, 0, 0, 5)])
def test_a_region_outside_the_slide_is_one_line(tissue_slide: tuple[MemorySlide, np.ndarray],
                                                region: tuple[int, int, int, int]) -> None:
    slide, _ = tissue_slide
    x, y, w, h = region
    with pytest.raises(DataError) as raised:
        tile_grid(slide, 0, 1.0, (64, 64), 0.25, all_tissue(slide), region, source=SOURCE)
    assert str(raised.value) == (f"slide.svs: region x={x}, y={y}, {w}x{h} is outside the slide, which is 2048x1536 "
                                 "pixels at level 0 (give x,y,w,h with w and h at least 1 that lie within it)")


def test_the_slide_keys_reach_the_project(tmp_path: Path) -> None:
    model = {"name": "flexunet", "image_width": 64, "image_height": 64, "microns_per_pixel": 0.5}
    path = write_tiny_project(tmp_path, model=model, slides={"tissue": "saturation", "overlap": 0.5})
    project = load_project(path)
    assert project.model.microns_per_pixel == 0.5 and "microns_per_pixel" not in project.model.options
    assert (project.slides.tissue, project.slides.tissue_side, project.slides.overlap) == ("saturation", 1024, 0.5)
    assert project.resolved["slides"] == {"tissue": "saturation", "tissue_side": 1024, "min_tissue_area": 5000.0,
                                          "max_hole_area": 10000.0, "overlap": 0.5}


@pytest.mark.parametrize(("changes", "line"), [
    ({"slides": {"tissue": "otsu"}}, "slides.tissue: must be one of saturation, optical_density, all; got 'otsu'"),
    ({"slides": {"tissue_side": 32}}, "slides.tissue_side: must be at least 64, got 32"),
    ({"slides": {"overlap": 0.95}}, "slides.overlap: must be at most 0.9, got 0.95"),
    ({"slides": {"tisue": "all"}}, "slides.tisue: unknown key (did you mean 'tissue'?)"),
    ({"model": {"name": "flexunet", "image_width": 64, "image_height": 64, "microns_per_pixel": 0}},
     "model.microns_per_pixel: must be at least 0.01, got 0.0"),
])
def test_bad_slide_keys_are_one_line(tmp_path: Path, changes: dict[str, Any], line: str) -> None:
    project = write_tiny_project(tmp_path, **changes)
    assert single_error_line(invoke("train", project)) == f"error: {project.resolve()}: {line}"
    assert not (tmp_path / "run").exists()


def test_the_slide_keys_are_documented() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "project-file.md").read_text(encoding="utf-8")
    for key in ("model.microns_per_pixel", "slides.tissue", "slides.tissue_side", "slides.min_tissue_area",
                "slides.max_hole_area", "slides.overlap"):
        assert f"| `{key}` |" in page, key


def test_tissue_and_grid_need_no_tensorflow() -> None:
    from segkit_process import block_imports, output_of, run_python

    script = block_imports(["tensorflow", "keras"]) + (
        "import numpy as np\n"
        "from segkit.slides.grid import tile_grid\n"
        "from segkit.slides.tissue import detect_tissue\n"
        "image = np.full((32, 32, 3), 245, np.uint8); image[8:24, 8:24] = (200, 120, 170)\n"
        "print(int(detect_tissue(image, 'all').sum()), 'skimage' in sys.modules)\n")
    result = run_python(script)
    assert result.returncode == 0 and result.stdout.split() == ["256", "True"], output_of(result)


@pytest.mark.parametrize("style", ["aperio", "ome"])
def test_tissue_and_tiles_of_a_written_pyramid(tmp_path: Path, style: str) -> None:
    from segkit_slides.formats import open_ome_tiff, open_with_openslide
    from slide_files import write_pyramid

    image, truth = slide_with_tissue()
    path = tmp_path / ("slide.svs" if style == "aperio" else "slide.ome.tif")
    write_pyramid(path, image, style=style, microns_per_pixel=0.25, levels=4)
    levels = pyramid_levels(image, 4)
    with (open_with_openslide if style == "aperio" else open_ome_tiff)(path) as slide:
        tissue = tissue_mask(slide, path, **TISSUE)
        expected = low_resolution_truth(truth, 8)
        assert tissue.level == 3 and (tissue.mask & expected).sum() / (tissue.mask | expected).sum() > 0.9
        level, scale = choose_level(slide, 0.5, source=path)
        tiles = tile_grid(slide, level, scale, (128, 128), 0.25, tissue, source=path)
        assert (level, scale) == (1, 1.0) and tiles
        for tile in tiles[::7]:
            read = slide.read_region(tile.level, tile.x, tile.y, tile.read_width, tile.read_height)
            column, row = tile.x // 2, tile.y // 2
            part = levels[1][row:row + 128, column:column + 128]
            assert np.array_equal(read[:part.shape[0], :part.shape[1]], part)
