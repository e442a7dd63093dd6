"""Test slides: pyramidal tiled TIFFs written with tifffile, of synthetic H&E with glass margins.

No slide is ever downloaded (issue 27): the tests build their own. Two layouts, as the slide
readers meet them in the wild:

- ``"aperio"``: an SVS-like file. Level 0 is the first directory, its ImageDescription starts
  ``Aperio Image Library`` and carries ``|MPP = 0.5``; each sub-resolution level is a further
  tiled top-level directory (what OpenSlide's aperio driver and tiffslide's aperio parser read).
- ``"ome"``: an OME-TIFF. Level 0 carries the OME-XML (``PhysicalSizeX/Y`` in µm) and the lower
  levels are its SubIFDs, as tifffile, bioformats and QuPath write pyramids.

Each level is half the one above (rounded up), made by averaging 2x2 blocks of the level above
(the last row/column repeated where a size is odd), so a test can compare a region it reads with
:func:`pyramid_levels` of the same image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import tifffile

SlideStyle = Literal["aperio", "ome"]
Compression = Literal["zlib", "jpeg"]
#: the glass: what a scanner sees where there is no tissue
GLASS = 255
#: JPEG quality of the test slides (Aperio scanners write 70 to 90)
JPEG_QUALITY = 90


def halve(image: np.ndarray) -> np.ndarray:
    """One pyramid step: the mean of each 2x2 block (edge repeated for odd sizes), rounded."""
    height, width = image.shape[:2]
    padded = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge").astype(np.uint16)
    blocks = padded[0::2, 0::2] + padded[1::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 1::2]
    return ((blocks + 2) // 4).astype(np.uint8)


def pyramid_levels(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """``levels`` arrays, level 0 ``image`` itself and each next one :func:`halve` of the previous."""
    pyramid = [np.ascontiguousarray(image)]
    for _ in range(levels - 1):
        pyramid.append(halve(pyramid[-1]))
    return pyramid


def aperio_description(width: int, height: int, tile: int, microns_per_pixel: float | None,
                       compression: Compression) -> str:
    """An ImageDescription as Aperio's ScanScope writes it; ``None`` leaves ``MPP`` out."""
    codec = f"JPEG/RGB Q={JPEG_QUALITY}" if compression == "jpeg" else "ZLIB/RGB"
    fields = [f"Aperio Image Library v12.0.15 \r\n{width}x{height} [0,0 {width}x{height}] ({tile}x{tile}) {codec}",
              "AppMag = 20"]
    if microns_per_pixel is not None:
        fields.append(f"MPP = {microns_per_pixel:g}")
    return "|".join(fields)


def write_pyramid(path: Path, image: np.ndarray, *, style: SlideStyle, microns_per_pixel: float | None = 0.5,
                  tile: int = 256, levels: int = 3, compression: Compression = "zlib") -> None:
    """Write ``image`` (H, W, 3) uint8 as a tiled pyramidal TIFF of ``levels`` levels.

    ``compression="zlib"`` is lossless (reads compare exactly); ``"jpeg"`` is what scanners write.
    ``microns_per_pixel=None`` writes no pixel size at all (the "cannot be found" case).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    pyramid = pyramid_levels(image, levels)
    options: dict[str, object] = {"tile": (tile, tile), "photometric": "rgb", "compression": compression,
                                  "compressionargs": {"level": JPEG_QUALITY if compression == "jpeg" else 6}}
    with tifffile.TiffWriter(path, bigtiff=False, ome=style == "ome") as tiff:
        if style == "aperio":
            _write_aperio(tiff, pyramid, tile, microns_per_pixel, compression, options)
        elif style == "ome":
            _write_ome(tiff, pyramid, microns_per_pixel, options)
        else:
            raise ValueError(f"style must be 'aperio' or 'ome', got {style!r}")


def _write_aperio(tiff: tifffile.TiffWriter, pyramid: list[np.ndarray], tile: int, microns_per_pixel: float | None,
                  compression: Compression, options: dict[str, object]) -> None:
    height, width = pyramid[0].shape[:2]
    description = aperio_description(width, height, tile, microns_per_pixel, compression)
    tiff.write(pyramid[0], description=description, metadata=None, **options)  # type: ignore[arg-type]
    # the second directory of an SVS is a stripped thumbnail (tifffile's SVS series expects it there;
    # OpenSlide lists it as the associated image "thumbnail"), the levels follow it
    thumbnail = halve(pyramid[-1])
    tiff.write(thumbnail, description=f"Aperio Image Library v12.0.15 \r\n{width}x{height} -> "
               f"{thumbnail.shape[1]}x{thumbnail.shape[0]}", metadata=None, photometric="rgb", compression="zlib")
    for level in pyramid[1:]:
        # SVS levels are full-resolution-kind directories (no "reduced" flag, which would end tifffile's
        # list of levels); real files repeat the description on each, OpenSlide reads level 0's
        tiff.write(level, description=description, metadata=None, **options)  # type: ignore[arg-type]


def _write_ome(tiff: tifffile.TiffWriter, pyramid: list[np.ndarray], microns_per_pixel: float | None,
               options: dict[str, object]) -> None:
    metadata: dict[str, object] = {"axes": "YXS"}
    if microns_per_pixel is not None:
        metadata.update(PhysicalSizeX=microns_per_pixel, PhysicalSizeXUnit="µm",
                        PhysicalSizeY=microns_per_pixel, PhysicalSizeYUnit="µm")
    tiff.write(pyramid[0], subifds=len(pyramid) - 1, metadata=metadata, **options)  # type: ignore[arg-type]
    for level in pyramid[1:]:
        tiff.write(level, subfiletype=1, metadata=None, **options)  # type: ignore[arg-type]


def synthetic_slide(width: int, height: int, seed: int, *, tile: int = 128, margin: int = 64
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A slide-sized picture: synthetic-he tiles side by side, framed by ``margin`` pixels of glass.

    Returns ``(image (H, W, 3) uint8, classes (H, W) uint8 (0 stroma/glass, 1 benign, 2
    malignant), instances (H, W) int32 (0 off nuclei, ids unique over the whole slide))``. Tiles
    are rendered whole and cut where the tissue area ends, so nuclei are cut at its edges and
    touch at the tiles' seams, as a tile grid meets them.
    """
    from segkit_synthetic.he_tiles import TileSettings, generate_tile_with_instances

    if min(width, height) <= 2 * margin:
        raise ValueError(f"a {width}x{height} slide has no room inside a {margin}-pixel margin")
    settings = TileSettings(size=tile)
    palette = np.array(settings.class_colors, np.uint8)
    image = np.full((height, width, 3), GLASS, np.uint8)
    classes = np.zeros((height, width), np.uint8)
    instances = np.zeros((height, width), np.int32)
    next_id = 0
    for index, (y, x) in enumerate(_tile_origins(width, height, tile, margin)):
        rgb, mask, ids = generate_tile_with_instances(seed * 100_003 + index, settings)
        rows, cols = min(tile, height - margin - y), min(tile, width - margin - x)
        image[y:y + rows, x:x + cols] = rgb[:rows, :cols]
        classes[y:y + rows, x:x + cols] = _class_indices(mask[:rows, :cols], palette)
        cut = ids[:rows, :cols]
        instances[y:y + rows, x:x + cols] = np.where(cut > 0, cut + next_id, 0)
        next_id += int(ids.max())
    return image, classes, _consecutive(instances)


def _tile_origins(width: int, height: int, tile: int, margin: int) -> list[tuple[int, int]]:
    return [(y, x) for y in range(margin, height - margin, tile) for x in range(margin, width - margin, tile)]


def _class_indices(mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """The class index of each pixel of a colour mask (every colour is one of ``palette``'s)."""
    matches = np.all(mask[:, :, None, :] == palette[None, None], axis=-1)
    return matches.argmax(axis=-1).astype(np.uint8)


def _consecutive(ids: np.ndarray) -> np.ndarray:
    """Ids 1..N: a nucleus whose tile part was cut away by the tissue edge leaves no gap."""
    values, inverse = np.unique(ids, return_inverse=True)
    if values[0] != 0:
        return (inverse.reshape(ids.shape) + 1).astype(np.int32)
    return inverse.reshape(ids.shape).astype(np.int32)


def spoil_tile(path: Path, level: int, tile_index: int = 0) -> tuple[int, int]:
    """Overwrite tile ``tile_index`` of ``level`` with bytes no codec decodes; its ``(x, y)`` in the level.

    The file keeps its size and structure, as a bad sector or a broken copy leaves it.
    """
    with tifffile.TiffFile(path) as tiff:
        page = tiff.series[0].levels[level].keyframe
        offset, count = page.dataoffsets[tile_index], page.databytecounts[tile_index]
        across = -(-page.imagewidth // page.tilewidth)
        corner = (tile_index % across * page.tilewidth, tile_index // across * page.tilelength)
    with open(path, "r+b") as stream:
        stream.seek(offset)
        stream.write(bytes(range(7, 256, 13)) * (count // 19) + b"\xff" * (count % 19))
    return corner
