"""A slide's class mask, accumulated on disk and saved as a tiled, pyramidal OME-TIFF in bounded memory.

The slide engine predicts class indices tile by tile; :class:`MaskCanvas` keeps them in a scratch
file beside the output (never in memory) and :meth:`MaskCanvas.save_pyramid` writes level 0 and
its sub-resolution levels from it, one tile at a time. Peak memory depends on the tile size, not
on the slide.

How the levels are made: each level is the one above it subsampled by 2, keeping the top-left
pixel of every 2x2 block (nearest neighbour). A class index is a label, not an intensity: an
average would invent a class between two others, and a 2x2 mode ties whenever a block straddles a
border (2 against 2), so it needs a tie rule that favours some class. Point sampling never invents
a value, keeps each class's share of the area unbiased, and makes every pixel of level ``k`` the
level-0 pixel at ``(2**k * y, 2**k * x)``, so the whole pyramid can be checked against level 0.

The file: OME-TIFF (BigTIFF, deflate-compressed tiles) with the reduced levels in SubIFDs of level 0,
as OME-TIFF 6 and Bio-Formats (QuPath) read them. OpenSlide reads no SubIFDs, only the chain of top-
level IFDs, so the reduced levels are linked into that chain as well: the same IFDs, reachable both
ways. tifffile and tiffslide then see one OME series with every level, OpenSlide a generic tiled TIFF
with the same levels; the pixel size is in the OME XML and in the TIFF resolution tags (which
OpenSlide and tiffslide read).
Whether Bio-Formats minds the extra main-chain IFDs (its OME XML maps only IFD 0) is not tested here.

Opening it in QuPath (from QuPath's docs and javadoc; none of this was tried in a running QuPath):
File > Open (or a drop on the viewer) reads it with QuPath's Bio-Formats image server, which takes
OME-TIFF SubIFD pyramids (its OpenSlide server would read the same levels from the main chain), as
one 8-bit channel whose values are the class indices: Brightness & contrast (0 to the number of
classes) makes them visible, and the OME pixel size gives µm. Shown *over* the slide it needs a
script: build an ImageServer from the file (``ImageServers.buildServer``) and hand it to
``PixelClassificationOverlay.create(options, Map<ImageData, ImageServer>, renderer)``, the overlay a
pixel classifier's output is drawn with (QuPath's BufferedImageOverlay takes only small, non-
pyramidal images). The colour variant (``palette=``) opens as an ordinary RGB image for viewing.
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from segkit.classes import ClassTable
from segkit.durable import disk_problem, replace_durably
from segkit.errors import DataError
from segkit.slides.outputs import OME_SUFFIXES

#: output pixels per side of the blocks a level is subsampled in (a block reads 2x that from the level above)
HALVING_BLOCK = 512
#: encoded tiles tifffile may hold at once (it buffers them for its encoder threads)
ENCODE_BUFFER_BYTES = 4 * 2**20


class MaskCanvas:
    """Level-0 class indices of a ``width`` x ``height`` slide, kept in a scratch file on disk.

    Read and written row by row with pread/pwrite, not through a numpy memmap: the pages of a
    mapping count in the process's resident memory, and the kernel maps 64 KB around every page
    touched (fault-around), so reading a tile's rows through one cost 256 x 64 KB on a wide slide
    (measured: 20 MB of growth at 16k x 16k through a memmap, against 6 MB this way).

    ``beside`` is the output file (or its folder): the scratch file is made in that folder, so a
    full disk shows before any prediction is made, and the final rename stays on one filesystem.
    Pixels never written hold 0. Use as a context manager, or call :meth:`close`.

    ``keep_at`` names the scratch file instead (for a slide that may be resumed): it is opened as
    it is when it already holds ``width x height`` pixels, else made (reserved) there, and it stays
    after :meth:`close` (its owner removes it).
    """

    def __init__(self, beside: Path, width: int, height: int, dtype: npt.DTypeLike = np.uint8, *,
                 keep_at: Path | None = None) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "u":
            raise ValueError(f"a class mask holds unsigned integers, not {self.dtype}")
        if width < 1 or height < 1:
            raise ValueError(f"a canvas of {width} x {height} pixels holds nothing")
        self.width, self.height = width, height
        self.folder = beside if beside.is_dir() else beside.parent
        size = width * height * self.dtype.itemsize
        self._file = _scratch_file(self.folder, size) if keep_at is None else _kept_scratch_file(keep_at, size)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``, numpy's order."""
        return self.height, self.width

    def write(self, x: int, y: int, block: npt.ArrayLike) -> None:
        """Put the ``(h, w)`` class indices ``block`` at level-0 column ``x``, row ``y``."""
        values = np.asarray(block)
        self._check_block(x, y, values)
        rows = np.ascontiguousarray(values, dtype=self.dtype)
        for row, line in enumerate(rows):
            os.pwrite(self._file.fileno(), line, self._offset(x, y + row))

    def read(self, x: int, y: int, width: int, height: int, *, row_step: int = 1) -> np.ndarray:
        """The ``height`` x ``width`` pixels at column ``x``, row ``y`` (every ``row_step``-th row)."""
        if not (0 <= x and 0 <= y and width >= 0 and height >= 0 and x + width <= self.width
                and y + height <= self.height):
            raise ValueError(f"region {x},{y},{width},{height} lies outside the {self.width} x {self.height} canvas")
        region = np.empty((len(range(0, height, row_step)), width), self.dtype)
        for line, row in zip(region, range(y, y + height, row_step)):
            if os.preadv(self._file.fileno(), [line], self._offset(x, row)) != line.nbytes:
                raise OSError(f"the slide mask's scratch file ended before row {row}")
        return region

    def halved(self) -> MaskCanvas:
        """The next pyramid level: every other row and column (see the module's docstring for why)."""
        half = MaskCanvas(self.folder, -(-self.width // 2), -(-self.height // 2), self.dtype)
        try:
            for y in range(0, half.height, HALVING_BLOCK):
                for x in range(0, half.width, HALVING_BLOCK):
                    width, height = min(2 * HALVING_BLOCK, self.width - 2 * x), min(2 * HALVING_BLOCK, self.height - 2 * y)
                    half.write(x, y, self.read(2 * x, 2 * y, width, height, row_step=2)[:, ::2])
        except BaseException:
            half.close()
            raise
        return half

    def save_pyramid(self, final_path: Path, *, tile: int = 256, levels: int | None = None,
                     microns_per_pixel: float | None = None, palette: ClassTable | None = None,
                     uuid: str | None = None) -> Path:
        """Write the tiled pyramidal OME-TIFF of this canvas to ``final_path``; returns it.

        ``uuid`` is the OME file's UUID (default: a new one, as tifffile makes): one derived from what
        made the mask lets the same slide and model give the same bytes on any machine.

        ``levels`` counts level 0 (default: halve until a level fits in one tile). With
        ``palette``, the file holds each class's RGB colour instead of its index (for viewing).
        The file is written under a temporary name and renamed into place only when complete:
        an exception (Ctrl-C included) leaves no file under ``final_path`` and an earlier one as it was.
        A SIGTERM with Python's default handler runs no cleanup: the half-written temporary stays beside
        (``durable.remove_temporaries`` clears it); a handler that raises gets the cleanup above.
        """
        count = _checked_levels(final_path, self.shape, tile, levels, microns_per_pixel)
        chain = [self]
        try:
            for _ in range(count - 1):
                chain.append(chain[-1].halved())
            replace_durably(final_path,
                            lambda temporary: _write_pyramid(temporary, chain, tile, microns_per_pixel, palette,
                                                             uuid),
                            final_path.parent, lambda exc: _disk_error(exc, final_path.parent))
        finally:
            for canvas in chain[1:]:
                canvas.close()
        return final_path

    def close(self) -> None:
        self._file.close()

    def sync(self) -> None:
        """Make every pixel written so far durable (a resumable slide's checkpoint relies on it)."""
        os.fsync(self._file.fileno())

    def __enter__(self) -> MaskCanvas:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def _offset(self, x: int, y: int) -> int:
        return (y * self.width + x) * self.dtype.itemsize

    def _check_block(self, x: int, y: int, block: np.ndarray) -> None:
        if block.ndim != 2 or block.dtype.kind not in "uib":  # integers: an argmax is int64
            raise ValueError(f"a block of class indices is a 2-D array of integers, not {block.dtype} "
                             f"of shape {block.shape}")
        height, width = block.shape
        if x < 0 or y < 0 or x + width > self.width or y + height > self.height:
            raise ValueError(f"a {width} x {height} block at {x},{y} lies outside the {self.width} x {self.height} canvas")
        if block.size and not np.can_cast(block.dtype, self.dtype):
            low, high = block.min(), block.max()
            if low < 0 or high > np.iinfo(self.dtype).max:
                raise ValueError(f"class index {low if low < 0 else high} does not fit the canvas's {self.dtype}")


def level_shapes(shape: tuple[int, int], levels: int) -> list[tuple[int, int]]:
    """``(height, width)`` of each of ``levels`` levels, each the one above halved (rounded up)."""
    shapes = [shape]
    while len(shapes) < levels:
        height, width = shapes[-1]
        shapes.append((-(-height // 2), -(-width // 2)))
    return shapes


def level_tiles(canvas: MaskCanvas, tile: int, palette: ClassTable | None) -> Iterator[np.ndarray]:
    """One level's tiles in the order a TIFF stores them (rows of tiles, top to bottom; edges short)."""
    for y in range(0, canvas.height, tile):
        for x in range(0, canvas.width, tile):
            block = canvas.read(x, y, min(tile, canvas.width - x), min(tile, canvas.height - y))
            yield block if palette is None else palette.colorize(block)


def _checked_levels(final_path: Path, shape: tuple[int, int], tile: int, levels: int | None,
                    microns_per_pixel: float | None) -> int:
    """How many levels to write; every argument checked before anything is written."""
    if not final_path.name.lower().endswith(OME_SUFFIXES):
        raise DataError(f"{final_path}: an OME-TIFF's name ends in .ome.tif or .ome.tiff (rename the output)")
    if not final_path.parent.is_dir():
        raise DataError(f"{final_path.parent}: no such folder (create it or choose another output folder)")
    if tile < 16 or tile % 16:
        raise ValueError(f"TIFF tiles are a multiple of 16 pixels wide, not {tile}")
    most = 1 + math.ceil(math.log2(max(shape)))  # the last of these levels is 1 x 1 pixel
    if levels is not None and not 1 <= levels <= most:
        raise ValueError(f"a {shape[1]} x {shape[0]} mask has 1 to {most} pyramid levels, not {levels}")
    if microns_per_pixel is not None and not (math.isfinite(microns_per_pixel) and microns_per_pixel > 0):
        raise ValueError(f"a pixel size is a positive number of µm, not {microns_per_pixel}")
    if levels is not None:
        return levels
    return next(count for count, (h, w) in enumerate(level_shapes(shape, most), start=1) if max(h, w) <= tile)


def _write_pyramid(path: Path, chain: list[MaskCanvas], tile: int, microns_per_pixel: float | None,
                   palette: ClassTable | None, uuid: str | None = None) -> None:
    """Level 0 with ``chain[1:]`` as its SubIFDs, tile by tile; a full disk becomes one line."""
    import tifffile

    try:
        with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tiff:
            for index, canvas in enumerate(chain):
                tiff.write(level_tiles(canvas, tile, palette), tile=(tile, tile), compression="zlib",
                           buffersize=ENCODE_BUFFER_BYTES,
                           **_level_layout(index, chain, microns_per_pixel, palette, uuid))
        _link_levels_to_main_chain(path)
    except OSError as exc:
        raise _disk_error(exc, path.parent) from None


def _level_layout(index: int, chain: list[MaskCanvas], microns_per_pixel: float | None,
                  palette: ClassTable | None, uuid: str | None) -> dict[str, Any]:
    """tifffile.write's arguments for level ``index``: shape, type, where it goes, its pixel size."""
    canvas = chain[index]
    layout: dict[str, Any] = {
        "shape": canvas.shape if palette is None else (*canvas.shape, 3),
        "dtype": canvas.dtype if palette is None else np.uint8,
        "photometric": "minisblack" if palette is None else "rgb",
    }
    if index == 0:
        layout["subifds"] = len(chain) - 1
        layout["metadata"] = _ome_metadata(microns_per_pixel, palette) | ({"UUID": uuid} if uuid else {})
    else:
        layout["subfiletype"] = 1  # FILETYPE_REDUCEDIMAGE: how OpenSlide and Bio-Formats tell levels apart
    if microns_per_pixel is not None:
        # the level's own pixel size, from its real downsample (a level of an odd size is not exactly 2x)
        x_size = microns_per_pixel * chain[0].width / canvas.width
        y_size = microns_per_pixel * chain[0].height / canvas.height
        layout["resolution"] = (1e4 / x_size, 1e4 / y_size)
        layout["resolutionunit"] = "CENTIMETER"
    return layout


def _ome_metadata(microns_per_pixel: float | None, palette: ClassTable | None) -> dict[str, Any]:
    metadata: dict[str, object] = {"axes": "YX" if palette is None else "YXS",
                                   "Name": "class indices" if palette is None else "class colours"}
    if microns_per_pixel is not None:
        metadata.update(PhysicalSizeX=microns_per_pixel, PhysicalSizeXUnit="µm",
                        PhysicalSizeY=microns_per_pixel, PhysicalSizeYUnit="µm")
    return metadata


def _link_levels_to_main_chain(path: Path) -> None:
    """Point level 0's next-IFD field at its first SubIFD (tifffile chains the SubIFDs themselves).

    tifffile writes no such link (a SubIFD is a child, not a sibling); OpenSlide finds levels only
    along the main chain, so without it OpenSlide would see level 0 alone.
    """
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        first = tiff.pages.first
        subifds, layout, ifd_at = first.subifds, tiff.tiff, first.offset
    if not subifds:
        return
    with path.open("r+b") as handle:
        handle.seek(ifd_at)
        (entries,) = struct.unpack(layout.tagnoformat, handle.read(layout.tagnosize))
        handle.seek(ifd_at + layout.tagnosize + entries * layout.tagsize)
        handle.write(struct.pack(layout.offsetformat, subifds[0]))


def _scratch_file(folder: Path, size: int) -> IO[bytes]:
    """An open file of ``size`` zero bytes in ``folder`` whose name is already gone.

    Its space is reserved now (fallocate): a full disk shows before any tile is predicted, not
    hours later in the middle of a slide. Its name is removed at once: the space is freed
    when the file is closed or the process ends, however it ends (kill -9 too).
    """
    try:
        descriptor, name = tempfile.mkstemp(prefix=".", suffix=".canvas.tmp", dir=folder)
    except OSError as exc:
        raise _disk_error(exc, folder) from None
    try:
        os.unlink(name)
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(descriptor, 0, size)
        else:  # macOS: sparse, so a full disk shows only as the canvas fills
            os.ftruncate(descriptor, size)
    except OSError as exc:
        os.close(descriptor)
        raise _disk_error(exc, folder) from None
    return os.fdopen(descriptor, "r+b")


def _kept_scratch_file(path: Path, size: int) -> IO[bytes]:
    """The named scratch file at ``path``: opened when it holds ``size`` bytes, else made and reserved."""
    try:
        if path.is_file() and path.stat().st_size == size:
            return path.open("r+b")
        with path.open("wb") as handle:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(handle.fileno(), 0, size)
            else:
                os.ftruncate(handle.fileno(), size)
        return path.open("r+b")
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise _disk_error(exc, path.parent) from None


def _disk_error(exc: BaseException, folder: Path) -> BaseException:
    """One line for a full or unwritable output folder; ``exc`` itself for any other error.

    durable.disk_error's line is about a run folder (``--resume``, ``project.output_dir``); this is
    the same test (durable.disk_problem) worded for a slide's outputs.
    """
    problem = disk_problem(exc)
    if problem is None:
        return exc
    what, todo = ("the disk is full", "free space") if problem == "full" else ("it is not writable", "make it writable")
    return DataError(f"{folder}: cannot write the slide mask there, {what} ({getattr(exc, 'strerror', '')}); {todo} "
                     "or choose another output folder")
