"""Reading images and categorized masks into uint8 arrays, whatever mode the file was saved in."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from segkit.classes import ClassTable
from segkit.data.names import shown_path
from segkit.errors import DataError
from segkit.text import visible

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def is_image_name(path: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> bool:
    """Whether ``path``'s name says image: one of ``suffixes`` in any case, and not hidden (``._x.png``)."""
    return path.suffix.lower() in suffixes and not path.name.startswith(".")


def _unreadable(path: Path, exc: BaseException) -> DataError:
    where = shown_path(path)
    if isinstance(exc, PermissionError):
        return DataError(f"{where}: cannot be read (permission denied; give yourself read access or "
                         "remove it from the folder)")
    if _is_empty(path):  # Pillow says only "cannot identify"; an empty file is usually a failed copy
        return DataError(f"{where}: is empty (0 bytes); copy it again or remove it from the folder")
    if isinstance(exc, Image.DecompressionBombError):
        return DataError(f"{where}: too large to decode in one piece ({str(exc).split(',')[0]}); "
                         "cut it into tiles first, or remove it from the folder")
    if isinstance(exc, UnidentifiedImageError):  # Pillow's own text only repeats the path
        return DataError(f"{where}: cannot be read as an image (not a format Pillow recognises, or a damaged "
                         "header); re-export it or remove it from the folder")
    detail = visible(" ".join(str(exc).split()))[:200]
    return DataError(f"{where}: cannot be read as an image ({exc.__class__.__name__}: {detail}); "
                     "re-export it or remove it from the folder")


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


@contextlib.contextmanager
def reading(path: Path, unreadable: Callable[[Path, BaseException], DataError] | None = None) -> Iterator[None]:
    """Turn any failure while opening, decoding or converting ``path`` into a :class:`DataError`
    (``unreadable(path, exc)``'s, by default the image reader's message).

    On a damaged file Pillow's format plugins raise far more than the documented OSError and
    ValueError (struct.error, EOFError, IndexError, TypeError; DecompressionBombError for a header
    that claims billions of pixels), sometimes only when the mode is converted. A file is untrusted
    input, so every such failure is the file's to fix, and the whole read runs inside this guard.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - see the docstring
        raise (unreadable or _unreadable)(path, exc) from None


def _to_8bit(array: np.ndarray) -> np.ndarray:
    """Scale 16-bit or float data to 0..255 by its own range, the usual microscopy convention.

    Integer data that already fits 0..255 is kept as is; NaN and infinities (float TIFFs) become 0.
    """
    if array.dtype == np.uint8:
        return array
    floating = array.dtype.kind == "f"
    array = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    top = array.max() if array.size else 0.0
    if floating and top <= 1.0:
        top = 1.0
    if not floating and top <= 255 and array.min() >= 0:
        return array.astype(np.uint8)
    return np.clip(array / max(top, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite transparent pixels onto white, as a viewer shows them."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def read_image(path: Path, channels: int = 3) -> np.ndarray:
    """Decode ``path`` to ``(H, W, channels)`` uint8; ``channels`` is 1 or 3."""
    with reading(path), Image.open(path) as image:
        return _to_channels(image, channels)


def read_preview(
    path: Path, max_side: int = 64, channels: int = 3
) -> tuple[tuple[int, int], str, np.ndarray]:
    """Header ``(width, height)`` and mode, plus the image shrunk to about ``max_side`` pixels a side.

    The file is opened and decoded once. JPEGs decode straight at a reduced scale (Pillow ``draft``);
    other formats decode fully and are then box-reduced by an integer factor, so the preview keeps
    the aspect ratio and is between ``max_side`` and ``2 * max_side`` on its short side.
    """
    with reading(path), Image.open(path) as image:
        size, mode = image.size, image.mode
        image.draft("L" if channels == 1 else "RGB", (max_side, max_side))
        array = _to_channels(image, 3)
    factor = max(1, min(array.shape[:2]) // max_side)
    if factor > 1:
        array = np.asarray(Image.fromarray(array).reduce(factor))
    return size, mode, _to_channels(Image.fromarray(array), channels)


def _to_channels(image: Image.Image, channels: int) -> np.ndarray:
    """Any Pillow mode -> ``(H, W, channels)`` uint8, alpha flattened onto white, 16-bit scaled."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = _flatten_alpha(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        gray = _to_8bit(np.asarray(image))
        array = np.repeat(gray[:, :, None], 3, axis=2)
    else:
        array = np.asarray(image.convert("RGB"))
    if channels == 1:
        weights = np.array([0.299, 0.587, 0.114])
        return (array @ weights + 0.5).clip(0, 255).astype(np.uint8)[:, :, None]
    return np.ascontiguousarray(array)


def read_mask(path: Path, table: ClassTable) -> tuple[np.ndarray, int]:
    """Decode a categorized mask to class indices ``(H, W)`` uint8 plus its far-colour pixel count.

    RGB(A) masks are decoded by nearest class colour. A single-channel mask whose values are all
    below the number of classes is taken as class indices already; other single-channel masks are
    read as gray colours and decoded like RGB.
    """
    source = read_mask_source(path, table)
    if source.ndim == 2:
        return source, 0
    return table.decode(source)


def read_mask_source(path: Path, table: ClassTable) -> np.ndarray:
    """The mask as stored: class indices ``(H, W)`` uint8 when the file holds them, else RGB ``(H, W, 3)``.

    For callers that need the colours themselves (statistics of off-palette colours); ``read_mask``
    decodes the RGB case by nearest class colour.
    """
    with reading(path), Image.open(path) as image:
        if image.mode in ("L", "I;16", "I;16B", "I;16L", "I"):
            values = np.asarray(image)
            if values.size and int(values.max()) < table.num_classes:
                return values.astype(np.uint8)
            return np.repeat(_to_8bit(values)[:, :, None], 3, axis=2)
        return np.asarray(image.convert("RGB"))


def image_size(path: Path, *, verify: bool = False) -> tuple[int, int]:
    """``(width, height)`` from the header, without decoding the pixels.

    ``verify`` also runs Pillow's integrity check, which costs a read of the file but no decoding:
    for PNG it checks every chunk's CRC through to the end, so truncated and bit-flipped PNGs
    fail here; other formats are only checked as far as their header.
    """
    with reading(path):
        with Image.open(path) as image:
            size = image.size
            if verify:
                image.verify()
        return size


def write_png(path: Path, array: np.ndarray, compress_level: int = 6) -> None:
    """Write uint8 ``(H, W)`` or ``(H, W, 3)`` atomically (temp file + rename); ``compress_level``
    is zlib's (Pillow's default 6; 1 encodes photos ~40% faster for ~10% more bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    squeezed = array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array
    Image.fromarray(squeezed.astype(np.uint8)).save(tmp, format="PNG", compress_level=compress_level)
    tmp.replace(path)
