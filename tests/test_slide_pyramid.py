"""The slide class-mask writer: a pyramidal OME-TIFF read back equals the in-memory result at every
level, opens in tifffile, tiffslide and OpenSlide, stays in bounded memory, and fails cleanly."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from segkit.classes import ClassInfo, ClassTable
from segkit.errors import DataError
from segkit.slides import pyramid
from segkit.slides.pyramid import MaskCanvas

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1000, 700  # odd halvings (700 -> 350 -> 175 -> 88) and edge tiles on both sides
TABLE = ClassTable(tuple(ClassInfo(name, color) for name, color in (
    ("background", (255, 255, 255)), ("tumour", (200, 0, 0)), ("stroma", (0, 160, 0)),
    ("immune", (0, 0, 220)), ("necrosis", (90, 60, 20)))))


@pytest.fixture
def mask() -> np.ndarray:
    """Five classes at random: any offset or interpolation in a level shows as a mismatch."""
    return np.random.default_rng(27).integers(0, 5, (HEIGHT, WIDTH), dtype=np.uint8)


def filled_canvas(folder: Path, mask: np.ndarray) -> MaskCanvas:
    """``mask`` written in 300 x 300 blocks, a size no tile or level boundary lines up with."""
    canvas = MaskCanvas(folder, mask.shape[1], mask.shape[0])
    for y in range(0, mask.shape[0], 300):
        for x in range(0, mask.shape[1], 300):
            canvas.write(x, y, mask[y : y + 300, x : x + 300])
    return canvas


def expected_levels(mask: np.ndarray, levels: int) -> list[np.ndarray]:
    """Nearest-neighbour halving of the in-memory mask: the top-left pixel of every 2**k block."""
    return [mask[:: 2**k, :: 2**k] for k in range(levels)]


def saved(folder: Path, mask: np.ndarray, name: str = "slide.ome.tif", **options: object) -> Path:
    with filled_canvas(folder, mask) as canvas:
        return canvas.save_pyramid(folder / name, **options)  # type: ignore[arg-type]


def test_every_level_read_back_equals_the_in_memory_pyramid(tmp_path: Path, mask: np.ndarray) -> None:
    import tifffile

    path = saved(tmp_path, mask, tile=128, levels=4, microns_per_pixel=0.25)
    with tifffile.TiffFile(path) as tiff:
        assert tiff.is_ome and tiff.is_bigtiff and len(tiff.series) == 1
        series = tiff.series[0]
        assert [level.shape for level in series.levels] == [(700, 1000), (350, 500), (175, 250), (88, 125)]
        for level, expected in zip(series.levels, expected_levels(mask, 4)):
            page = level.keyframe
            assert (page.tilelength, page.tilewidth) == (128, 128)
            assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
            np.testing.assert_array_equal(level.asarray(), expected)
        assert tiff.pages.first.subifds is not None and len(tiff.pages.first.subifds) == 3


def test_ome_xml_and_resolution_tags_carry_the_pixel_size(tmp_path: Path, mask: np.ndarray) -> None:
    import tifffile

    path = saved(tmp_path, mask, levels=2, microns_per_pixel=0.25)
    with tifffile.TiffFile(path) as tiff:
        pixels = ET.fromstring(tiff.ome_metadata).find(".//{*}Pixels")
        level_1 = tiff.series[0].levels[1].keyframe
        assert level_1.tags["XResolution"].value == (20000, 1)  # 0.5 µm/px at half the size
    assert pixels is not None
    assert {key: pixels.get(key) for key in ("PhysicalSizeX", "PhysicalSizeY", "PhysicalSizeXUnit", "SizeX",
                                             "SizeY", "Type")} == {
        "PhysicalSizeX": "0.25", "PhysicalSizeY": "0.25", "PhysicalSizeXUnit": "µm", "SizeX": "1000",
        "SizeY": "700", "Type": "uint8"}


def test_tiffslide_and_openslide_see_every_level_and_the_pixel_size(tmp_path: Path, mask: np.ndarray) -> None:
    import openslide
    import tiffslide

    path = saved(tmp_path, mask, tile=128, levels=3, microns_per_pixel=0.5)
    dimensions = ((1000, 700), (500, 350), (250, 175))
    levels = expected_levels(mask, 3)
    with tiffslide.TiffSlide(path) as slide:
        assert slide.level_dimensions == dimensions
        assert slide.properties["tiffslide.mpp-x"] == pytest.approx(0.5)
        region = slide.read_region((200, 100), 1, (300, 150), as_array=True)
        np.testing.assert_array_equal(region[..., 0], levels[1][50:200, 100:400])
    with openslide.OpenSlide(path) as slide:
        assert slide.level_dimensions == dimensions
        assert slide.level_downsamples == (1.0, 2.0, 4.0)
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.5)
        for level, expected in enumerate(levels):
            pixels = np.asarray(slide.read_region((0, 0), level, dimensions[level]))
            np.testing.assert_array_equal(pixels[..., 0], expected)  # grey levels come back as R = G = B
            assert (pixels[..., 3] == 255).all()


def test_levels_by_default_halve_until_one_tile_holds_the_level(tmp_path: Path, mask: np.ndarray) -> None:
    import tifffile

    for tile, shapes in ((256, [(700, 1000), (350, 500), (175, 250)]), (512, [(700, 1000), (350, 500)])):
        path = saved(tmp_path, mask, name=f"tile{tile}.ome.tif", tile=tile)
        with tifffile.TiffFile(path) as tiff:
            assert [level.shape for level in tiff.series[0].levels] == shapes
            assert "PhysicalSizeX" not in tiff.ome_metadata  # not known, not guessed


def test_the_colour_variant_paints_each_level_with_the_class_colours(tmp_path: Path, mask: np.ndarray) -> None:
    import tifffile

    path = saved(tmp_path, mask, name="colours.ome.tif", levels=3, palette=TABLE)
    with tifffile.TiffFile(path) as tiff:
        for level, expected in zip(tiff.series[0].levels, expected_levels(mask, 3)):
            assert level.keyframe.photometric == tifffile.PHOTOMETRIC.RGB
            np.testing.assert_array_equal(level.asarray(), TABLE.colorize(expected))


def test_the_scratch_file_has_no_name_and_unwritten_pixels_are_zero(tmp_path: Path) -> None:
    with MaskCanvas(tmp_path / "slide.ome.tif", 40, 30) as canvas:
        assert list(tmp_path.iterdir()) == []  # nothing for a kill -9 to leave behind
        canvas.write(10, 5, np.full((3, 4), 7, np.uint8))
        region = canvas.read(8, 4, 8, 5)
    expected = np.zeros((5, 8), np.uint8)
    expected[1:4, 2:6] = 7
    np.testing.assert_array_equal(region, expected)


def interrupt_on_level_1(real: object) -> object:
    """``level_tiles`` that raises KeyboardInterrupt at level 1's third tile (level 0 written whole)."""
    def tiles(canvas: MaskCanvas, tile: int, palette: ClassTable | None) -> Iterator[np.ndarray]:
        for count, block in enumerate(real(canvas, tile, palette)):  # type: ignore[operator]
            if canvas.width == WIDTH // 2 and count == 2:
                raise KeyboardInterrupt
            yield block
    return tiles


def test_an_interrupted_save_leaves_no_file_and_the_earlier_one_untouched(tmp_path: Path, mask: np.ndarray,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    earlier = tmp_path / "earlier.ome.tif"
    earlier.write_bytes(b"the previous run's mask")
    monkeypatch.setattr(pyramid, "level_tiles", interrupt_on_level_1(pyramid.level_tiles))
    with filled_canvas(tmp_path, mask) as canvas:
        for target in (earlier, tmp_path / "new.ome.tif"):
            with pytest.raises(KeyboardInterrupt):
                canvas.save_pyramid(target, tile=128)
        assert earlier.read_bytes() == b"the previous run's mask"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier.ome.tif"]  # no temporary, no scratch
        monkeypatch.undo()
        canvas.save_pyramid(earlier, tile=128)  # the canvas is whole after the interruption
    import tifffile

    np.testing.assert_array_equal(tifffile.imread(earlier), mask)


def test_a_full_disk_while_saving_is_one_line_naming_the_folder(tmp_path: Path, mask: np.ndarray,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import tifffile

    def full(self: object, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    earlier = tmp_path / "slide.ome.tif"
    earlier.write_bytes(b"kept")
    with filled_canvas(tmp_path, mask) as canvas:
        monkeypatch.setattr(tifffile.FileHandle, "write", full)
        with pytest.raises(DataError) as raised:
            canvas.save_pyramid(earlier)
    assert str(raised.value) == (f"{tmp_path}: cannot write the slide mask there, the disk is full "
                                 "(No space left on device); free space or choose another output folder")
    assert earlier.read_bytes() == b"kept"
    assert [p.name for p in tmp_path.iterdir()] == ["slide.ome.tif"]


def test_no_room_for_the_scratch_file_is_one_line_before_anything_is_written(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def full(descriptor: int, offset: int, size: int) -> None:
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(DataError) as raised:
        MaskCanvas(tmp_path / "slide.ome.tif", 100_000, 80_000)
    assert str(raised.value) == (f"{tmp_path}: cannot write the slide mask there, the disk is full "
                                 f"({os.strerror(errno.EDQUOT)}); free space or choose another output folder")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "options", "error", "message"), [
    ("slide.tif", {}, DataError, "slide.tif: an OME-TIFF's name ends in .ome.tif or .ome.tiff (rename the output)"),
    ("missing/slide.ome.tif", {}, DataError, "missing: no such folder (create it or choose another output folder)"),
    ("slide.ome.tif", {"tile": 100}, ValueError, "TIFF tiles are a multiple of 16 pixels wide, not 100"),
    ("slide.ome.tif", {"levels": 12}, ValueError, "a 1000 x 700 mask has 1 to 11 pyramid levels, not 12"),
    ("slide.ome.tif", {"microns_per_pixel": 0.0}, ValueError, "a pixel size is a positive number of µm, not 0.0"),
])
def test_bad_save_arguments_are_refused_before_anything_is_written(
        tmp_path: Path, mask: np.ndarray, name: str, options: dict[str, object], error: type[Exception],
        message: str) -> None:
    with filled_canvas(tmp_path, mask) as canvas, pytest.raises(error) as raised:
        canvas.save_pyramid(tmp_path / name, **options)  # type: ignore[arg-type]
    assert str(raised.value) == (f"{tmp_path}/{message}" if error is DataError else message)
    assert list(tmp_path.iterdir()) == []


def test_blocks_outside_the_canvas_or_its_type_are_refused(tmp_path: Path) -> None:
    with MaskCanvas(tmp_path, 64, 32) as canvas:
        with pytest.raises(ValueError, match=r"a 16 x 8 block at 56,0 lies outside the 64 x 32 canvas"):
            canvas.write(56, 0, np.zeros((8, 16), np.uint8))
        with pytest.raises(ValueError, match=r"class index 300 does not fit the canvas's uint8"):
            canvas.write(0, 0, np.full((2, 2), 300, np.int64))
        with pytest.raises(ValueError, match=r"class index -1 does not fit the canvas's uint8"):
            canvas.write(0, 0, np.full((2, 2), -1, np.int8))
        with pytest.raises(ValueError, match=r"2-D array of integers, not float32"):
            canvas.write(0, 0, np.zeros((2, 2), np.float32))
        canvas.write(0, 0, np.full((2, 2), 4, np.int64))  # fits: accepted, stored as uint8
        np.testing.assert_array_equal(canvas.read(0, 0, 3, 1), [[4, 4, 0]])


def test_saving_an_8k_canvas_grows_memory_by_a_small_fraction_of_one_level(tmp_path: Path) -> None:
    """The benchmark's worker (fill in 512 blocks, save every level) in a fresh process: peak RSS over
    its baseline stays under 16 MiB where level 0 alone would take 64 MiB."""
    import tifffile

    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_slide_pyramid.py"), "--worker",
                           "--size", "8192", "--folder", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result["growth_mb"] < 16, result
    with tifffile.TiffFile(tmp_path / "mask.ome.tif") as tiff:
        assert [level.shape[0] for level in tiff.series[0].levels] == [8192, 4096, 2048, 1024, 512, 256]
        sample = tiff.series[0].levels[2].asarray()[1000:1100, 300:400]  # level 2: level-0 rows 4000.., cols 1200..
    rows, columns = np.arange(4000, 4400, 4)[:, None] // 37, np.arange(1200, 1600, 4)[None, :] // 53
    np.testing.assert_array_equal(sample, (rows + columns) % 5)


SAVE_THEN_HANG = """
import sys, time
from pathlib import Path
from segkit.slides import pyramid
real = pyramid.level_tiles
def hanging(canvas, tile, palette):
    for count, block in enumerate(real(canvas, tile, palette)):
        if count == 3:
            print("writing", flush=True)
            time.sleep(120)
        yield block
pyramid.level_tiles = hanging
folder = Path(sys.argv[1])
with pyramid.MaskCanvas(folder, 1000, 700) as canvas:
    canvas.save_pyramid(folder / "slide.ome.tif", tile=128)
"""


def test_sigterm_mid_save_leaves_the_earlier_file_and_only_a_temporary_durable_removes(tmp_path: Path) -> None:
    """A real SIGTERM (no handler: no Python cleanup runs) in a process that cannot import TensorFlow."""
    import signal

    from segkit.durable import remove_temporaries
    from segkit_process import block_imports, start_python

    (tmp_path / "slide.ome.tif").write_bytes(b"the previous run's mask")
    process = start_python(block_imports(["tensorflow", "keras"]) + SAVE_THEN_HANG, [tmp_path], stderr_apart=True)
    assert process.stdout is not None and process.stdout.readline() == "writing\n", process.communicate()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGTERM
    assert (tmp_path / "slide.ome.tif").read_bytes() == b"the previous run's mask"
    # the scratch file had no name to leave; the half-written file is the durable temporary
    assert sorted(p.name for p in tmp_path.iterdir()) == [".slide.ome.tmp.tif", "slide.ome.tif"]
    remove_temporaries(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["slide.ome.tif"]
