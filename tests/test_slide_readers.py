"""The slide readers (plugin segkit_slides) on pyramids tests/slide_files.py writes, and segkit.slides.open_slide."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from cli_results import invoke
from segkit.errors import DataError, PluginError
from segkit.plugins import get_registry
from segkit.slides.open_slide import CheckedSlide, open_slide, require_microns_per_pixel
from segkit.specs import Slide
from segkit_process import block_imports, imported_by_listing_and_validation, output_of, run_python
from slide_files import pyramid_levels, spoil_tile, synthetic_slide, write_pyramid
from tiny_data import write_tiny_project

WIDTH, HEIGHT = 600, 420  # level 1 is 300x210, level 2 150x105: odd sizes where a tile is cut
SUFFIX = {"aperio": ".svs", "ome": ".ome.tif"}
#: every reader with the layouts it reads whole (OpenSlide sees an OME-TIFF's SubIFD levels not at all)
READS = [("ome-tiff", "ome"), ("openslide", "aperio"), ("openslide", "ome-level-0"), ("tiffslide", "aperio"),
         ("tiffslide", "ome")]


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    return synthetic_slide(WIDTH, HEIGHT, seed=3, margin=40)[0]


@pytest.fixture(scope="module")
def slides(tmp_path_factory: pytest.TempPathFactory, picture: np.ndarray) -> dict[tuple[str, str], Path]:
    """Each layout in each compression, tiles of 128 so that regions cross tile borders."""
    folder = tmp_path_factory.mktemp("slides")
    written = {}
    for style in ("aperio", "ome"):
        for compression in ("zlib", "jpeg"):
            path = folder / f"{style}-{compression}{SUFFIX[style]}"
            write_pyramid(path, picture, style=style, compression=compression, tile=128)  # type: ignore[arg-type]
            written[style, compression] = path
    return written


def _open(slides: dict[tuple[str, str], Path], reader: str, style: str, compression: str = "zlib") -> CheckedSlide:
    return open_slide(slides[style.removesuffix("-level-0"), compression], get_registry(), reader)


@pytest.mark.parametrize(("reader", "style"), READS)
def test_each_reader_reads_the_levels_and_pixel_size(slides: dict[tuple[str, str], Path], reader: str,
                                                     style: str) -> None:
    with _open(slides, reader, style) as slide:
        assert isinstance(slide.inner, Slide)
        if style == "ome-level-0":
            assert slide.level_dimensions == ((600, 420),) and slide.level_downsamples == (1.0,)
            return
        assert slide.level_dimensions == ((600, 420), (300, 210), (150, 105))
        assert slide.level_downsamples == (1.0, 2.0, 4.0)
        # tiffslide reads an Aperio description's MPP, not the OME-XML's PhysicalSizeX (ome-tiff is tried first)
        assert slide.microns_per_pixel == (None if (reader, style) == ("tiffslide", "ome") else (0.5, 0.5))


@pytest.mark.parametrize(("reader", "style"), READS)
def test_regions_equal_the_levels_written(slides: dict[tuple[str, str], Path], picture: np.ndarray, reader: str,
                                          style: str) -> None:
    levels = pyramid_levels(picture, 3)
    with _open(slides, reader, style) as slide:
        # level 0: x, y and the size in level-0 pixels, over four tiles
        np.testing.assert_array_equal(slide.read_region(0, 100, 90, 200, 70), picture[90:160, 100:300])
        if style != "ome-level-0":
            # level 1: x, y still in level-0 pixels (OpenSlide's convention), the size in level-1 pixels
            np.testing.assert_array_equal(slide.read_region(1, 250, 120, 90, 110), levels[1][60:170, 125:215])
            np.testing.assert_array_equal(slide.read_region(2, 0, 0, 150, 105), levels[2])


@pytest.mark.parametrize(("reader", "style"), [("ome-tiff", "ome"), ("openslide", "aperio"), ("tiffslide", "aperio")])
def test_jpeg_regions_are_the_levels_within_jpeg_error(slides: dict[tuple[str, str], Path], picture: np.ndarray,
                                                       reader: str, style: str) -> None:
    levels = pyramid_levels(picture, 3)
    with _open(slides, reader, style, "jpeg") as slide:
        for level, region, expected in ((0, (100, 90, 200, 70), picture[90:160, 100:300]),
                                        (1, (250, 120, 90, 110), levels[1][60:170, 125:215])):
            read = slide.read_region(level, *region).astype(int)
            error, shifted = np.abs(read - expected), np.abs(read[:, 1:] - expected[:, :-1])
            # JPEG's own loss, and far below what reading a pixel off would cost
            assert error.mean() < 5 and error.mean() < shifted.mean() / 2, (level, error.mean(), shifted.mean())


@pytest.mark.parametrize(("reader", "style"), [("ome-tiff", "ome"), ("openslide", "aperio"), ("tiffslide", "aperio")])
def test_a_region_partly_beyond_the_slide_is_white_there(slides: dict[tuple[str, str], Path], picture: np.ndarray,
                                                         reader: str, style: str) -> None:
    levels = pyramid_levels(picture, 3)
    with _open(slides, reader, style) as slide:
        corner = slide.read_region(0, 560, 400, 100, 50)
        assert corner.shape == (50, 100, 3)
        np.testing.assert_array_equal(corner[:20, :40], picture[400:, 560:])
        assert (corner[20:] == 255).all() and (corner[:, 40:] == 255).all()
        # before the origin: level-0 (-40, -20) at level 1 is (-20, -10)
        before = slide.read_region(1, -40, -20, 60, 30)
        np.testing.assert_array_equal(before[10:, 20:], levels[1][:20, :40])
        assert (before[:10] == 255).all() and (before[:, :20] == 255).all()


def test_the_first_reader_that_claims_a_file_opens_it(slides: dict[tuple[str, str], Path]) -> None:
    registry = get_registry()
    assert open_slide(slides["ome", "zlib"], registry).reader == "ome-tiff"
    assert open_slide(slides["aperio", "zlib"], registry).reader == "openslide"


def test_a_pixel_size_override_replaces_the_files(slides: dict[tuple[str, str], Path]) -> None:
    registry = get_registry()
    assert open_slide(slides["aperio", "zlib"], registry, microns_per_pixel=0.25).microns_per_pixel == (0.25, 0.25)
    slide = open_slide(slides["ome", "zlib"], registry, "tiffslide", microns_per_pixel=(0.3, 0.4))
    assert slide.microns_per_pixel == (0.3, 0.4)
    assert require_microns_per_pixel(slide, slides["ome", "zlib"]) == (0.3, 0.4)


@pytest.mark.parametrize(("style", "reader"), [("aperio", "openslide"), ("aperio", "tiffslide"), ("ome", "ome-tiff")])
def test_a_slide_without_a_pixel_size_says_so_when_asked(tmp_path: Path, picture: np.ndarray, style: str,
                                                         reader: str) -> None:
    path = tmp_path / f"no-size{SUFFIX[style]}"
    write_pyramid(path, picture, style=style, microns_per_pixel=None, tile=128)  # type: ignore[arg-type]
    with open_slide(path, get_registry(), reader) as slide:
        assert slide.microns_per_pixel is None
        with pytest.raises(DataError) as info:
            require_microns_per_pixel(slide, path, "set it with --set slide.microns_per_pixel=0.5")
    assert str(info.value) == f"{path}: the slide's metadata holds no pixel size (set it with --set " \
                              "slide.microns_per_pixel=0.5)"


def _error(path: Path, reader: str | None = None) -> str:
    with pytest.raises(DataError) as info:
        open_slide(path, get_registry(), reader)
    return str(info.value)


def test_a_missing_file_or_a_folder_is_one_line(tmp_path: Path) -> None:
    assert _error(tmp_path / "gone.svs") == f"{tmp_path / 'gone.svs'}: no such file (check the path)"
    assert _error(tmp_path) == (f"{tmp_path}: is a folder, not a slide (give the slide's file, e.g. the .mrxs "
                                "beside its folder)")


def test_a_file_no_reader_opens_names_each_reader_tried(tmp_path: Path, picture: np.ndarray) -> None:
    png = tmp_path / "tile.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    fake = tmp_path / "notes.svs"
    fake.write_text("not a slide\n", encoding="utf-8")
    advice = "(convert it to a pyramidal TIFF or OME-TIFF, or install a reader for its format)"
    assert _error(png) == (f"{png}: not a slide any installed reader opens (ome-tiff: not its format; openslide: "
                           f"not its format; tiffslide: not its format) {advice}")
    assert _error(fake) == (f"{fake}: not a slide any installed reader opens (ome-tiff: not its format; openslide: "
                            f"OpenSlide does not know its format; tiffslide: not its format) {advice}")


def test_a_truncated_slide_is_one_line_when_opened(slides: dict[tuple[str, str], Path], tmp_path: Path) -> None:
    source = slides["ome", "zlib"]
    path = tmp_path / "cut.ome.tif"
    path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    assert _error(path, "ome-tiff").startswith(
        f"{path}: slide reader 'ome-tiff' cannot open it: the file is truncated or corrupt: ")
    assert _error(path, "ome-tiff").endswith(" (copy the file again if it is damaged, or choose another reader)")
    aperio = tmp_path / "cut.svs"
    aperio.write_bytes(slides["aperio", "zlib"].read_bytes()[: slides["aperio", "zlib"].stat().st_size // 2])
    line = _error(aperio)
    assert line.startswith(f"{aperio}: not a slide any installed reader opens (ome-tiff: not its format; openslide: "
                           "OpenSlide does not know its format; tiffslide: the file is truncated or corrupt: "), line
    assert "\n" not in line


@pytest.mark.parametrize(("reader", "style", "reason"), [
    ("ome-tiff", "ome", "libdeflate_zlib_decompress returned LIBDEFLATE_BAD_DATA"),
    ("tiffslide", "aperio", "libdeflate_zlib_decompress returned LIBDEFLATE_BAD_DATA"),
    ("openslide", "aperio", "TIFFRGBAImageGet failed, last error: ZIPDecode: Decoding error at scanline 128, "
                            "incorrect header check"),
])
def test_a_tile_that_fails_to_decode_names_the_level_and_region(slides: dict[tuple[str, str], Path], tmp_path: Path,
                                                                 picture: np.ndarray, reader: str, style: str,
                                                                 reason: str) -> None:
    path = tmp_path / f"spoilt{SUFFIX[style]}"
    shutil.copy(slides[style, "zlib"], path)
    assert spoil_tile(path, 1, 1) == (128, 0)  # level 1's second tile: level-0 x 256..511, y 0..255
    with open_slide(path, get_registry(), reader) as slide:
        # the tiles around it still read
        np.testing.assert_array_equal(slide.read_region(1, 0, 0, 100, 100), pyramid_levels(picture, 2)[1][:100, :100])
        with pytest.raises(DataError) as info:
            slide.read_region(1, 200, 0, 100, 100)
    assert str(info.value) == (f"{path}: level 1, region x=200, y=0, 100x100: a tile cannot be decoded, the file is "
                               f"truncated or corrupt ({reason}; copy or export the slide again)")


def test_a_level_or_region_outside_the_slide_is_one_line(slides: dict[tuple[str, str], Path]) -> None:
    path = slides["ome", "zlib"]
    with open_slide(path, get_registry()) as slide:
        for args, problem in (((3, 0, 0, 10, 10), "level 3 is not in the slide (choose a level from 0 to 2)"),
                              ((-1, 0, 0, 10, 10), "level -1 is not in the slide (choose a level from 0 to 2)"),
                              ((0, 600, 0, 10, 10), "region x=600, y=0, 10x10 lies outside level 0 (600x420 pixels, "
                                                    "600x420 at level 0) (give a region that overlaps the slide)"),
                              ((1, 0, -100, 10, 50), "region x=0, y=-100, 10x50 lies outside level 1 (300x210 "
                                                     "pixels, 600x420 at level 0) (give a region that overlaps the "
                                                     "slide)"),
                              ((0, 0, 0, 0, 10), "region x=0, y=0, 0x10 is empty (give a width and a height of at "
                                                 "least 1)")):
            with pytest.raises(DataError) as info:
                slide.read_region(*args)
            assert str(info.value) == f"{path}: {problem}"


def test_a_reader_without_its_library_is_one_line_and_the_next_reader_opens_the_file(
        slides: dict[tuple[str, str], Path]) -> None:
    result = run_python(block_imports(["openslide", "tiffslide"]) + (
        "import sys\nfrom pathlib import Path\nfrom segkit.errors import PluginError, DataError\n"
        "from segkit.plugins import get_registry\nfrom segkit.slides.open_slide import open_slide\n"
        "path = Path(sys.argv[1])\n"
        "try:\n    open_slide(path, get_registry(), 'openslide')\nexcept PluginError as exc:\n    print(exc)\n"
        "try:\n    open_slide(path, get_registry())\nexcept DataError as exc:\n    print(exc)\n"
        "print(open_slide(Path(sys.argv[2]), get_registry()).reader)\n"), [slides["aperio", "zlib"], slides["ome", "zlib"]])
    assert result.stdout.strip().splitlines() == [
        "slide reader 'openslide' needs openslide-python and openslide-bin, which is not installed "
        '(pip install "segkit[slides]")',
        f"{slides['aperio', 'zlib']}: not a slide any installed reader opens (ome-tiff: not its format; openslide: "
        "slide reader 'openslide' needs openslide-python and openslide-bin, which is not installed "
        "(pip install \"segkit[slides]\"); tiffslide: slide reader 'tiffslide' needs tiffslide, which is not "
        "installed (pip install \"segkit[slides]\")) (convert it to a pyramidal TIFF or OME-TIFF, or install a "
        "reader for its format)",
        "ome-tiff",
    ], output_of(result)


def test_an_unknown_reader_name_is_one_line(slides: dict[tuple[str, str], Path]) -> None:
    with pytest.raises(PluginError) as info:
        open_slide(slides["aperio", "zlib"], get_registry(), "open-slide")
    assert str(info.value) == ("unknown slide_reader 'open-slide' (available: ome-tiff, openslide, tiffslide); "
                               "did you mean 'openslide'?")


def test_segkit_plugins_lists_the_slide_readers() -> None:
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    entries = [e for e in json.loads(result.output)["entries"] if e["kind"] == "slide_reader"]
    assert [e["name"] for e in entries] == ["ome-tiff", "openslide", "tiffslide"]
    assert {e["plugin"] for e in entries} == {"slides"} and all(e["options"] == [] for e in entries)
    table = invoke("plugins").output
    assert any(re.match(r"│ openslide +│ slide_reader │ SVS, NDPI", line) for line in table.splitlines()), table


def test_listing_and_validation_import_no_slide_library(tmp_path: Path) -> None:
    modules = ("openslide", "tiffslide", "zarr", "tensorflow", "keras")
    assert imported_by_listing_and_validation(write_tiny_project(tmp_path), modules,
                                              then="import segkit.slides.open_slide") == []


def test_ome_tiff_decodes_only_the_tiles_a_region_overlaps(slides: dict[tuple[str, str], Path], picture: np.ndarray,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from segkit_slides.ome_tiff_reader import OmeTiffSlide

    decoded: list[int] = []
    tile = OmeTiffSlide._tile
    monkeypatch.setattr(OmeTiffSlide, "_tile", lambda self, page, index, *rest: decoded.append(index) or
                        tile(self, page, index, *rest))
    with open_slide(slides["ome", "zlib"], get_registry()) as slide:
        np.testing.assert_array_equal(slide.read_region(0, 130, 10, 20, 20), picture[10:30, 130:150])
        assert decoded == [1]  # of level 0's 5x4 tiles, the second of the first row
        slide.read_region(0, 120, 120, 20, 20)  # a corner where four tiles meet
        assert decoded == [1, 0, 1, 5, 6]


def test_the_synthetic_slide_is_tissue_in_glass_with_one_class_per_nucleus() -> None:
    image, classes, instances = synthetic_slide(300, 200, seed=5, tile=64, margin=20)
    assert image.shape == (200, 300, 3) and classes.shape == instances.shape == (200, 300)
    glass = np.ones((200, 300), bool)
    glass[20:180, 20:280] = False
    assert (image[glass] == 255).all() and (classes[glass] == 0).all() and (instances[glass] == 0).all()
    assert not (image[~glass] == 255).all(axis=-1).all()
    ids = np.unique(instances)
    assert ids[0] == 0 and (ids == np.arange(len(ids))).all() and len(ids) > 20
    for nucleus in ids[1:]:
        assert len(np.unique(classes[instances == nucleus])) == 1 and classes[instances == nucleus][0] in (1, 2)
    assert ((classes > 0) == (instances > 0)).all()
